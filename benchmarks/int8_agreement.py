"""int8 TFLite against the float model on a whole test set: agreement, top-1, size, latency.

Runs ``noisy-student-export-model``'s ``export`` (keras, tflite_float, tflite_int8) once per
activation type (int8: full-integer, once per ``--calibrations`` entry: ``percentile`` ranges
clipped to ``--percentile``, ``minmax`` TFLite's own; int16: TFLite's 16x8 mode; float: int8
weights only), calibrated on ``--representative_examples`` training images, compared on every
``--data`` image, and writes the figures with the command, commit, date, TensorFlow version
and machine load to ``--output`` (written to a temp name, then renamed). Runs are keyed
``int8_minmax``, ``int8_percentile``, ``int8_percentile_float1`` (stem and first stage float:
``--float_stages``), ``int16``, ``float``.

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python -m benchmarks.int8_agreement \\
        --model=teacher/model.keras --data='data/validation-*' --train_data='data/train-*' \\
        --output=benchmarks/results/int8_cifar10.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from noisy_student.atomic_io import write_json_atomic  # noqa: E402
from noisy_student.cli import export_model  # noqa: E402
from noisy_student.export.tflite import (  # noqa: E402
    ACTIVATIONS,
    CALIBRATIONS,
    DEFAULT_FLOAT_STAGES,
    DEFAULT_PERCENTILE,
)

KEYS = ("num_examples", "top1", "agreement", "max_abs_diff", "size_bytes", "latency_ms",
        "weights", "calibration_images", "note")


def measure(args: argparse.Namespace, activations: str, output_dir: str,
            calibration: str = "percentile", float_stages: int = 0) -> dict:
    """One export; the figures of its keras, tflite_float and tflite_int8 rows."""
    start = time.time()
    report = export_model.export(
        args.model, output_dir, formats=["keras", "tflite_float", "tflite_int8"],
        data=args.data, max_examples=args.max_examples or None, representative_data=args.train_data,
        representative_examples=args.representative_examples, latency_runs=args.latency_runs,
        threads=1, small_images=args.small_images, label_offset=args.label_offset,
        batch_size=250, int8_activations=activations, int8_calibration=calibration,
        int8_percentile=args.percentile, int8_float_stages=float_stages,
        progress=lambda message: print(message, file=sys.stderr, flush=True))
    rows = {name: {key: row[key] for key in KEYS if key in row}
            for name, row in report["formats"].items()}
    return {"formats": rows, "warnings": report["warnings"],
            "int8_calibration": report.get("int8_calibration"),
            "seconds": round(time.time() - start, 1)}


def _commit() -> str | None:
    """The checked-out commit, with "+dirty" when tracked files differ from it."""
    def git(*command):
        return subprocess.run(["git", *command], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no")
                         else "") if commit else None
    except OSError:
        return None


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
    parser.add_argument("--calibrations", default=",".join(CALIBRATIONS),
                        help="int8 activation ranges to compare (int8 activations only)")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    parser.add_argument("--float_stages", default=f"0,{DEFAULT_FLOAT_STAGES}",
                        help="leading stages left float to compare (int8 percentile only)")
    parser.add_argument("--output", required=True, help="the JSON of the figures")
    parser.add_argument("--note", default="", help="recorded as is, e.g. which model this is")
    args = parser.parse_args()
    program = f"-m {__spec__.name}" if __spec__ else sys.argv[0]  # run with -m
    result = {"command": " ".join(["python", program, *sys.argv[1:]]), "note": args.note,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": _commit(),
              "load_average_before": os.getloadavg(), "cpus": os.cpu_count(),
              "threads": {k: os.environ.get(k) for k in
                          ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
              "runs": {}}
    runs = [("int8", c, s) for c in args.calibrations.split(",")
            for s in (map(int, args.float_stages.split(",")) if c == "percentile" else [0])
            ] if "int8" in args.activations.split(",") else []
    runs += [(a, "minmax", 0) for a in args.activations.split(",") if a != "int8"]
    with tempfile.TemporaryDirectory() as folder:
        for activations, calibration, stages in runs:
            key = activations if activations != "int8" else f"int8_{calibration}" + (
                f"_float{stages}" if stages else "")
            result["runs"][key] = measure(args, activations, os.path.join(folder, key),
                                          calibration, stages)
            write_json_atomic(args.output, result)  # what is done so far survives a kill
    import tensorflow as tf

    result.update(load_average_after=os.getloadavg(), tensorflow=tf.__version__)
    write_json_atomic(args.output, result)
    for key, run in result["runs"].items():
        int8, float_ = run["formats"]["tflite_int8"], run["formats"]["keras"]
        print(f"{key}: agreement {int8['agreement']:.2%}, top-1 "
              f"{int8['top1']:.2%} vs float {float_['top1']:.2%}, "
              f"{int8['size_bytes'] / 2**20:.2f} MiB, {int8.get('latency_ms', 0):.2f} ms")


if __name__ == "__main__":
    main()
