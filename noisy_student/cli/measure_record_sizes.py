"""Prints the bytes a pseudo-labeled record costs beyond its image, per storage form.

    noisy-student-record-sizes
    noisy-student-record-sizes --num_classes=10,100,1000 --storages=float16,topk:5

Each record is serialized with an empty ``image/encoded``, so the figure is everything but
the image bytes themselves (feature names, label, prob, the distribution, framing inside the
tf.train.Example; a TFRecord file adds 16 bytes per record on top). ``reference[:K]`` is the
whole reference record (no image at all) as the filter writes it: an ImageNet-style source
name, an index, the top K (default 5) classes, the rest's mass and its copies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402

# The record encoders (TensorFlow) are imported in `measure`, so usage errors come at once.

STORAGES = ("float32", "float16", "topk:1", "topk:5", "topk:10", "reference")
NUM_CLASSES = (10, 1000)
FLAGS = flags.FLAGS


def measure(num_classes: int, storage: str, seed: int = 0) -> int:
    """Size of a pseudo-labeled Example with an empty image, for a random softmax."""
    from noisy_student.data.records import encode_pseudo_labeled
    from noisy_student.data.reference_records import DEFAULT_TOP_K, encode_reference, with_copies

    logits = np.random.default_rng(seed).normal(size=num_classes) * 3
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if storage.startswith("reference"):
        k = int(storage.partition(":")[2] or DEFAULT_TOP_K)
        return len(with_copies(encode_reference("train-01023-of-01024", 1_251, probs, k), 2))
    return len(encode_pseudo_labeled(b"", probs, storage))


def table(storages: Sequence[str] = STORAGES, num_classes: Sequence[int] = NUM_CLASSES) -> str:
    """Markdown table: bytes per record beyond the image, per storage and class count."""
    lines = ["| storage | " + " | ".join(f"{c} classes" for c in num_classes) + " |",
             "| --- |" + " ---: |" * len(num_classes)]
    for storage in storages:
        k = int(storage.split(":")[1]) if ":" in storage else 0
        sizes = [f"{measure(c, storage):,}" if k <= c else "-" for c in num_classes]
        lines.append(f"| `{storage}` | " + " | ".join(sizes) + " |")
    return "\n".join(lines)


def define_flags() -> None:
    """Defines the tool's flags (only when run as a program)."""
    flag_groups.define_traceback_flag()
    flags.DEFINE_list("storages", list(STORAGES), "Probability storage forms to measure "
                      "(float32, float16, topk:K, reference[:K]).")
    flags.DEFINE_list("num_classes", [str(c) for c in NUM_CLASSES], "Class counts, one "
                      "table column each.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}")
    if not all(c.strip().isdigit() and int(c) >= 1 for c in FLAGS.num_classes or ["none"]):
        raise app.UsageError(f"--num_classes must be integers >= 1, got "
                             f"{','.join(FLAGS.num_classes)}")
    try:  # the class counts are valid: a ValueError is a storage form the encoders refuse
        text = table(FLAGS.storages, [int(c) for c in FLAGS.num_classes])
    except ValueError as err:
        raise app.UsageError(f"--storages: {err}") from None
    print(text)


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "noisy-student-record-sizes")


if __name__ == "__main__":
    run()
