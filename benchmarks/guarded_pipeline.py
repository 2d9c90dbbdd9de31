"""What counted skipping of bad images costs the training input pipeline, same run.

The pipeline is the small-image labeled training pipeline (`pipelines.labeled_dataset`, PNG
TFRecords of the bundled sample, pad-crop-flip, batches of 128). Two versions are timed,
alternating, in one process:
  guarded  as shipped: `bad_data.guarded_map` (undecodable images skipped, counted, named);
  plain    the same preprocessing in a plain parallel `Dataset.map` (a bad image would stop
           the pipeline), the cost floor for the guard.
Images/s is steady state (one iterator over the repeated dataset, a warm-up span excluded),
median of repeats. Run with PYTHONPATH pointing at another checkout to time its code.

    python benchmarks/guarded_pipeline.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from noisy_student import assets  # noqa: E402
from noisy_student.data import pipelines  # noqa: E402

SAMPLE = os.path.join(assets.SAMPLE_DIR, "train-*")
BATCH = 128


def plain_map(dataset, fn, *, stats, strict, deterministic):
    del stats, strict
    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def rate(guarded: bool, batches: int) -> float:
    patch = mock.patch.object(pipelines, "guarded_map", plain_map) if not guarded else None
    if patch:
        patch.start()
    try:
        dataset = pipelines.labeled_dataset(
            SAMPLE, image_size=32, batch_size=BATCH, training=True, num_classes=10,
            label_offset=1, small_images=True)
    finally:
        if patch:
            patch.stop()
    iterator = iter(dataset)
    for _ in range(5):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rates = {"guarded": [], "plain": []}
    for _ in range(args.repeats):
        for name in rates:
            rates[name].append(rate(name == "guarded", args.batches))
    guarded, plain = (statistics.median(rates[name]) for name in ("guarded", "plain"))
    print(f"{'pipeline':<10}{'img/s':>10}")
    print(f"{'guarded':<10}{guarded:>10.0f}")
    print(f"{'plain':<10}{plain:>10.0f}")
    print(f"guarded / plain: {guarded / plain:.2f}")


if __name__ == "__main__":
    main()
