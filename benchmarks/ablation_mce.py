"""CIFAR-10-C corruption error of one ablation model (benchmarks/cifar10_c.py's data and
evaluation). CIFAR-10 has no AlexNet reference errors, so the figure recorded is the
unnormalized mean corruption error: the error averaged over 15 corruptions x 5 severities, as
a fraction (lower is more robust)."""

from __future__ import annotations

import os
import time

import cifar10_c

DATA_LOCK = "cifar10_c_data"


def corrupted_data(out_dir: str, num_images: int, claim) -> dict:
    """The corrupted test subset, built once under `out_dir` by whichever worker gets there
    first (the others wait for it)."""
    args = cifar10_c.parse_args([f"--max_images={num_images}", "--workers=1",
                                 f"--data_dir={os.path.join(out_dir, 'cifar10_c_data')}"])
    lock = os.path.join(out_dir, "locks", DATA_LOCK)
    while not claim(lock):
        time.sleep(30)
    try:
        return cifar10_c.prepare_data(args, cifar10_c.input_pattern(args))
    finally:
        import shutil

        shutil.rmtree(lock, ignore_errors=True)


def mean_corruption_error(run_dir: str, iteration: int, out_dir: str, num_images: int,
                          claim) -> float:
    """The model of `iteration` in `run_dir`: its error averaged over every corrupted set
    (cached in RUN_DIR/cifar10_c/)."""
    import numpy as np

    data = corrupted_data(out_dir, num_images, claim)
    args = cifar10_c.parse_args([f"--max_images={num_images}", "--num_classes=10"])
    result = cifar10_c.evaluate_model(f"{run_dir}@{iteration}", 0, data, args,
                                      os.path.join(run_dir, "cifar10_c"))
    return float(np.mean(list(result["errors"].values())))
