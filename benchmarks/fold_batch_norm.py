"""Inference with batch norms folded into their convolutions (`efficientnet_tf.fold_batch_norm`)
against the model as built, same process, same inputs: CPU ms per image, both sides compiled
with tf.function, alternating in pairs after one warm-up each; one TensorFlow thread by default,
so that CPU time is the steady figure on a shared machine.

    python benchmarks/fold_batch_norm.py     # B0 at 224 px; the CIFAR recipe's B0 at 32 px

Writes benchmarks/results/fold_batch_norm.json (per pair, command, commit, date, load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from provenance import run_facts  # noqa: E402

RESULTS = os.path.join(HERE, "results", "fold_batch_norm.json")
# (name, create_model arguments, resolution, batch)
CASES = (
    ("B0, 224 px", {}, 224, 32),
    ("small-image B0, width and depth 0.5 (CIFAR recipe), 32 px",
     {"classes": 10, "small_images": True, "width_coefficient": 0.5, "depth_coefficient": 0.5},
     32, 256),
)


def measure(model, folded, resolution: int, batch: int, pairs: int) -> dict:
    import tensorflow as tf

    images = tf.constant(np.random.default_rng(0).uniform(
        0, 255, (batch, resolution, resolution, 3)).astype("float32"))
    plain_fn = tf.function(lambda x: model(x, training=False))
    folded_fn = tf.function(lambda x: folded(x, training=False))

    def cpu_ms(fn) -> float:
        start = time.process_time()
        fn(images).numpy()
        return (time.process_time() - start) / batch * 1e3

    cpu_ms(plain_fn), cpu_ms(folded_fn)  # tracing
    plain, fast = [], []
    for i in range(pairs):  # ABBA
        order = (plain_fn, folded_fn) if i % 2 == 0 else (folded_fn, plain_fn)
        for fn in order:
            (plain if fn is plain_fn else fast).append(cpu_ms(fn))
    return {"plain_cpu_ms_per_image": plain, "folded_cpu_ms_per_image": fast,
            "ratio_of_medians": statistics.median(plain) / statistics.median(fast)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from efficientnet_tf import create_model, fold_batch_norm
    from noisy_student.atomic_io import write_json_atomic

    rows = []
    for name, options, resolution, batch in CASES:
        model = create_model("b0", weights=None, input_shape=(resolution, resolution, 3),
                             **options)
        row = {"case": name, "resolution": resolution, "batch": batch,
               **measure(model, fold_batch_norm(model), resolution, batch, args.pairs)}
        print(f"{name}, batch {batch}: plain {statistics.median(row['plain_cpu_ms_per_image']):.2f}"
              f" ms/image, folded {statistics.median(row['folded_cpu_ms_per_image']):.2f}, "
              f"ratio {row['ratio_of_medians']:.2f}")
        rows.append(row)
    write_json_atomic(args.out, {**run_facts(argv), "threads": args.threads,
                                 "pairs": args.pairs, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
