"""Prints the bytes a pseudo-labeled record costs beyond its image, per storage form.

    python -m tools.measure_record_sizes

Each record is serialized with an empty ``image/encoded``, so the figure is everything but
the image bytes themselves (feature names, label, prob, the distribution, framing inside the
tf.train.Example; a TFRecord file adds 16 bytes per record on top).
"""

from __future__ import annotations

import numpy as np

from noisy_student.data.records import encode_pseudo_labeled

STORAGES = ("float32", "float16", "topk:1", "topk:5", "topk:10")
NUM_CLASSES = (10, 1000)


def measure(num_classes: int, storage: str, seed: int = 0) -> int:
    """Size of a pseudo-labeled Example with an empty image, for a random softmax."""
    logits = np.random.default_rng(seed).normal(size=num_classes) * 3
    probs = np.exp(logits - logits.max())
    return len(encode_pseudo_labeled(b"", probs / probs.sum(), storage))


def table() -> str:
    lines = ["| storage | " + " | ".join(f"{c} classes" for c in NUM_CLASSES) + " |",
             "| --- |" + " ---: |" * len(NUM_CLASSES)]
    for storage in STORAGES:
        k = int(storage.split(":")[1]) if storage.startswith("topk:") else 0
        sizes = [f"{measure(c, storage):,}" if k <= c else "-" for c in NUM_CLASSES]
        lines.append(f"| `{storage}` | " + " | ".join(sizes) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
