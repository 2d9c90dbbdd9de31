"""ImageNet-C style corrupted copies of a labeled record set, for mCE on data other than ImageNet.

The 15 corruptions x 5 severities come from the ``imagecorruptions`` package (PyPI; Michaelis
et al. 2019's packaging of Hendrycks & Dietterich's ImageNet-C code, generalized to any image
size). Two of its functions fail with current libraries; :func:`corruption_functions` patches
them without changing their math:

* ``glass_blur`` calls ``skimage.filters.gaussian(..., multichannel=True)``; scikit-image 0.19
  replaced ``multichannel`` with ``channel_axis`` and 0.26 removed it.
* ``fog`` allocates with ``np.float_``, removed in NumPy 2.0 (``np.float64`` is the same type).

Output layout (read by ``noisy_student.evaluation.robustness.evaluate_corrupted``)::

    output_dir/<corruption>/<severity>/<split>-00000-of-0000N    labeled records, labels as stored
    output_dir/labels.txt                                        copied from the input, if present

Each file is written under a temporary name and renamed, and existing files are skipped, so an
interrupted run resumes. Randomness (noise, frost crops, ...) is seeded per image.
"""

from __future__ import annotations

import io
import logging
import os
import types
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from noisy_student.data import labels_file, records
from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS, NUM_SEVERITIES

log = logging.getLogger(__name__)

IMAGE_FORMATS = ("png", "jpeg")


def _numpy_with_float_() -> types.ModuleType:
    """A stand-in for the ``np`` global of imagecorruptions that also has NumPy 1's
    ``float_`` alias (only that module sees it; NumPy itself is not modified)."""
    shim = types.ModuleType("numpy_with_float_")
    shim.__dict__.update(np.__dict__)
    shim.float_ = np.float64
    return shim


def corruption_functions() -> dict[str, Callable]:
    """{name: fn(PIL image or uint8 array, severity) -> array} for the 15 ImageNet-C
    corruptions, from imagecorruptions with the compatibility patches described above."""
    try:
        from imagecorruptions import corruptions as lib
    except ImportError as error:
        raise ImportError("make_corrupted needs the imagecorruptions package: "
                          "pip install 'efficientnet-noisy-student[corruptions]' or "
                          "pip install imagecorruptions") from error
    if not getattr(lib, "_noisy_student_patched", False):
        from skimage.filters import gaussian as sk_gaussian

        def gaussian(image, sigma=1, multichannel=None, **kwargs):
            if multichannel is not None and "channel_axis" not in kwargs:
                kwargs["channel_axis"] = -1 if multichannel else None
            return sk_gaussian(image, sigma=sigma, **kwargs)

        lib.gaussian = gaussian
        if not hasattr(np, "float_"):
            lib.np = _numpy_with_float_()
        lib._noisy_student_patched = True
    return {name: getattr(lib, name) for name in IMAGENET_C_CORRUPTIONS}


def corrupt_pixels(pixels: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """One corrupted copy of uint8 RGB pixels [H, W, 3] (same shape, uint8)."""
    functions = corruption_functions()
    if corruption not in functions:
        raise ValueError(f"unknown corruption {corruption!r}; use one of {sorted(functions)}")
    if not 1 <= severity <= NUM_SEVERITIES:
        raise ValueError(f"severity must be in 1..{NUM_SEVERITIES}, got {severity}")
    state = np.random.get_state()
    np.random.seed(seed % 2**32)  # the library draws from NumPy's global generator
    try:
        out = functions[corruption](Image.fromarray(pixels), severity)
    finally:
        np.random.set_state(state)
    out = np.uint8(np.clip(np.asarray(out), 0, 255))
    if out.shape != pixels.shape:  # some functions return other sizes for odd shapes
        out = np.asarray(Image.fromarray(out).resize(pixels.shape[1::-1], Image.BILINEAR))
    return out


def _encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG")
    else:  # the ImageNet-C release stores JPEG at quality 85
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def read_labeled_records(pattern: str, max_images: int | None = None
                         ) -> list[tuple[bytes, int, str]]:
    """(encoded image, stored label, file) of every record of ``pattern``, in file order."""
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{pattern}: no TFRecord files")
    examples = []
    for path in files:
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            features = tf.train.Example.FromString(raw).features.feature
            if records.IMAGE_KEY not in features or records.LABEL_KEY not in features:
                raise ValueError(f"{path}: record {len(examples)} is not a labeled example "
                                 f"(needs {records.IMAGE_KEY!r} and {records.LABEL_KEY!r})")
            examples.append((features[records.IMAGE_KEY].bytes_list.value[0],
                             int(features[records.LABEL_KEY].int64_list.value[0]), path))
            if max_images is not None and len(examples) >= max_images:
                return examples
    return examples


def make_corrupted(input_pattern: str, output_dir: str, *,
                   corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS,
                   severities: Sequence[int] = tuple(range(1, NUM_SEVERITIES + 1)),
                   split: str = "validation", images_per_shard: int = 1024,
                   image_format: str = "png", seed: int = 0, max_images: int | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Writes corrupted copies of the labeled records ``input_pattern`` under ``output_dir``.

    Returns {"num_images", "written": [paths], "skipped_existing": [paths]}.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    functions = corruption_functions()
    unknown = [c for c in corruptions if c not in functions]
    if unknown:
        raise ValueError(f"unknown corruption(s) {unknown}; use {sorted(functions)}")
    bad = [s for s in severities if not 1 <= s <= NUM_SEVERITIES]
    if bad:
        raise ValueError(f"severities must be in 1..{NUM_SEVERITIES}, got {bad}")
    examples = read_labeled_records(input_pattern, max_images)
    pixels = []
    for index, (data, _, path) in enumerate(examples):
        try:
            pixels.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except Exception as error:
            raise ValueError(f"{path}: record {index} does not decode as an image "
                             f"({error})") from error
    num_shards = max(1, -(-len(examples) // images_per_shard))
    written, skipped = [], []
    total = len(corruptions) * len(severities)
    for done, (corruption, severity) in enumerate(
            ((c, s) for c in corruptions for s in severities), start=1):
        directory = os.path.join(output_dir, corruption, str(severity))
        tf.io.gfile.makedirs(directory)
        for shard in range(num_shards):
            path = os.path.join(directory, f"{split}-{shard:05d}-of-{num_shards:05d}")
            if tf.io.gfile.exists(path):
                skipped.append(path)
                continue
            begin, end = shard * images_per_shard, (shard + 1) * images_per_shard
            with records.atomic_tfrecord_writer(path) as writer:
                for index in range(begin, min(end, len(examples))):
                    key = zlib.crc32(f"{corruption}/{severity}".encode())
                    image = corrupt_pixels(pixels[index], corruption, severity,
                                           seed=seed * 1_000_003 + key + index)
                    writer.write(records.encode_labeled(_encode(image, image_format),
                                                        examples[index][1]))
            written.append(path)
        message = f"[{done}/{total}] {corruption} severity {severity}: {len(examples)} images"
        (progress or log.info)(message)
    labels = labels_file.labels_file_beside(input_pattern)
    if labels:
        labels_file.copy_labels(labels, os.path.join(output_dir, labels_file.LABELS_FILE))
    return {"num_images": len(examples), "written": written, "skipped_existing": skipped}
