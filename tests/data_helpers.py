"""Real CIFAR-10 images for the data tests: the bundled sample and the shared .npz shards.

Reads records with ``tf.train.Example`` directly and decodes with Pillow, so expectations do
not go through the code under test.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
from PIL import Image

from noisy_student.assets import SAMPLE_DIR  # the bundled sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 10


def npz_dir() -> str | None:
    """Folder of the shared CIFAR-10 .npz shards, if this machine has it."""
    candidates = [
        os.environ.get("CIFAR10_NPZ_DIR", ""),
        os.path.join(REPO, "..", "shared", "data", "cifar10"),
    ]
    for path in candidates:
        if path and os.path.isfile(os.path.join(path, "cifar10_test.npz")):
            return path
    return None


def sample_examples(split: str, limit: int | None = None) -> list[dict]:
    """Records of a bundled split, in file order: {"image": bytes, "label": int or None}."""
    import tensorflow as tf

    files = sorted(f for f in os.listdir(SAMPLE_DIR) if f.startswith(f"{split}-"))
    out = []
    for name in files:
        for raw in tf.data.TFRecordDataset(os.path.join(SAMPLE_DIR, name)).as_numpy_iterator():
            feats = tf.train.Example.FromString(raw).features.feature
            label = feats["image/class/label"].int64_list.value if (
                "image/class/label" in feats) else None
            out.append({"image": feats["image/encoded"].bytes_list.value[0],
                        "label": int(label[0]) if label else None})
            if limit is not None and len(out) >= limit:
                return out
    return out


def pil_decode(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def sample_pixels(count: int, split: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, 32, 32, 3], 0-based labels [N]) of the first ``count`` bundled images."""
    examples = sample_examples(split, count)
    images = np.stack([pil_decode(e["image"]) for e in examples])
    labels = np.array([e["label"] - 1 for e in examples])
    return images, labels


def encode(pixels: np.ndarray, image_format: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format, **kwargs)
    return buffer.getvalue()


def manifest() -> list[dict]:
    with open(os.path.join(SAMPLE_DIR, "sources.csv"), newline="") as f:
        return list(csv.DictReader(f))
