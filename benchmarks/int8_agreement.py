"""int8 TFLite against the float model on a whole test set: agreement, top-1, size, latency.

Runs ``noisy-student-export-model``'s ``export`` (keras, tflite_float, tflite_int8) once per
activation type (int8: full-integer; int16: TFLite's 16x8 mode), calibrated on
``--representative_examples`` training images, compared on every ``--data`` image, and writes
the figures with the command, date, TensorFlow version and machine load to ``--output``
(written to a temp name, then renamed).

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python -m benchmarks.int8_agreement \\
        --model=teacher/model.keras --data='data/validation-*' --train_data='data/train-*' \\
        --output=benchmarks/results/int8_cifar10.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from noisy_student.atomic_io import write_json_atomic  # noqa: E402
from noisy_student.cli import export_model  # noqa: E402
from noisy_student.export.tflite import ACTIVATIONS  # noqa: E402

KEYS = ("num_examples", "top1", "agreement", "max_abs_diff", "size_bytes", "latency_ms",
        "weights", "calibration_images", "note")


def measure(args: argparse.Namespace, activations: str, output_dir: str) -> dict:
    """One export; the figures of its keras, tflite_float and tflite_int8 rows."""
    start = time.time()
    report = export_model.export(
        args.model, output_dir, formats=["keras", "tflite_float", "tflite_int8"],
        data=args.data, max_examples=args.max_examples or None, representative_data=args.train_data,
        representative_examples=args.representative_examples, latency_runs=args.latency_runs,
        threads=1, small_images=args.small_images, label_offset=args.label_offset,
        batch_size=250, int8_activations=activations,
        progress=lambda message: print(message, file=sys.stderr, flush=True))
    rows = {name: {key: row[key] for key in KEYS if key in row}
            for name, row in report["formats"].items()}
    return {"formats": rows, "warnings": report["warnings"],
            "seconds": round(time.time() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=".keras file or model directory")
    parser.add_argument("--data", required=True, help="labeled test TFRecords")
    parser.add_argument("--train_data", required=True, help="calibration TFRecords")
    parser.add_argument("--representative_examples", type=int, default=1000)
    parser.add_argument("--max_examples", type=int, default=0, help="0: every test image")
    parser.add_argument("--latency_runs", type=int, default=50)
    parser.add_argument("--label_offset", type=int, default=1)
    parser.add_argument("--small_images", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--activations", default=",".join(ACTIVATIONS))
    parser.add_argument("--output", required=True, help="the JSON of the figures")
    parser.add_argument("--note", default="", help="recorded as is, e.g. which model this is")
    args = parser.parse_args()
    program = f"-m {__spec__.name}" if __spec__ else sys.argv[0]  # run with -m
    result = {"command": " ".join(["python", program, *sys.argv[1:]]), "note": args.note,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "load_average_before": os.getloadavg(), "cpus": os.cpu_count(),
              "threads": {k: os.environ.get(k) for k in
                          ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
              "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        for activations in args.activations.split(","):
            result["runs"][activations] = measure(args, activations,
                                                  os.path.join(folder, activations))
    import tensorflow as tf

    result.update(load_average_after=os.getloadavg(), tensorflow=tf.__version__)
    write_json_atomic(args.output, result)
    for activations, run in result["runs"].items():
        int8, float_ = run["formats"]["tflite_int8"], run["formats"]["keras"]
        print(f"{activations} activations: agreement {int8['agreement']:.2%}, top-1 "
              f"{int8['top1']:.2%} vs float {float_['top1']:.2%}, "
              f"{int8['size_bytes'] / 2**20:.2f} MiB, {int8.get('latency_ms', 0):.2f} ms")


if __name__ == "__main__":
    main()
