"""tf.train.Example codecs for labeled, unlabeled and pseudo-labeled TFRecords.

Feature names follow the reference layout (see docs/data_format.md):

* labeled: ``image/encoded`` (JPEG/PNG bytes), ``image/class/label`` (int64, 1-based in
  ImageNet files; readers subtract ``label_offset``).
* unlabeled: ``image/encoded``; any other feature is ignored.
* pseudo-labeled: ``image/encoded``, the teacher's distribution, ``label`` (int64 argmax) and
  ``prob`` (float top-1). The distribution is stored in one of three forms:
  ``probabilities`` (float32 list, the reference form), ``probabilities/float16`` (bytes,
  little-endian float16) or ``probabilities/topk_indices`` + ``probabilities/topk_values``.
  Readers always return a dense float32 vector of length ``num_classes``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import atomic_output

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
PROBS_KEY = "probabilities"
PROBS_F16_KEY = "probabilities/float16"
TOPK_INDICES_KEY = "probabilities/topk_indices"
TOPK_VALUES_KEY = "probabilities/topk_values"
PSEUDO_LABEL_KEY = "label"
PSEUDO_PROB_KEY = "prob"

STORAGE_FORMATS = ("float32", "float16", "topk:K")


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _example(features: dict[str, tf.train.Feature]) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _check_image_bytes(image_bytes: bytes) -> None:
    if not isinstance(image_bytes, bytes | bytearray):
        raise TypeError(f"image_bytes must be the encoded image as bytes, got {type(image_bytes)}")


def encode_labeled(image_bytes: bytes, label: int) -> bytes:
    """Serializes a labeled example (the label is stored as given, e.g. 1-based)."""
    _check_image_bytes(image_bytes)
    if int(label) != label or label < 0:
        raise ValueError(f"label must be a non-negative integer, got {label!r}")
    return _example({IMAGE_KEY: _bytes_feature(bytes(image_bytes)),
                     LABEL_KEY: _int64_feature([int(label)])})


def encode_unlabeled(image_bytes: bytes) -> bytes:
    """Serializes an unlabeled example (image only)."""
    _check_image_bytes(image_bytes)
    return _example({IMAGE_KEY: _bytes_feature(bytes(image_bytes))})


def parse_storage(storage: str, num_classes: int) -> tuple[str, int]:
    """Validates a storage name; returns (kind, k) with k the top-k size (0 if not top-k)."""
    if storage in ("float32", "float16"):
        return storage, 0
    match = re.fullmatch(r"topk:(\d+)", storage)
    if not match:
        raise ValueError(f"unknown probability storage {storage!r}; use one of {STORAGE_FORMATS}")
    k = int(match.group(1))
    if not 1 <= k <= num_classes:
        raise ValueError(f"storage {storage!r}: K must be in [1, num_classes={num_classes}]")
    return "topk", k


def top_k_rows(probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values of each row of a [N, C] batch, largest first; among equal
    values the lower class index wins, like np.argmax (the order of a stable argsort). Whole
    rows are not sorted: a partition picks the k largest, a stable sort of those (in class
    order) ranks them. Rows where values equal to the k-th largest do not all fit in the k
    slots (e.g. one-hot rows) are sorted whole, so the lower class index wins there too."""
    neg = -np.asarray(probs)
    if k >= neg.shape[1] or not len(neg):
        return np.argsort(neg, axis=1, kind="stable")[:, :k]
    chosen = np.sort(np.argpartition(neg, k - 1, axis=1)[:, :k], axis=1)
    kth = np.take_along_axis(neg, chosen, 1).max(axis=1, keepdims=True)
    order = np.argsort(np.take_along_axis(neg, chosen, 1), axis=1, kind="stable")
    top = np.take_along_axis(chosen, order, 1)
    tied = (neg <= kth).sum(axis=1) > k
    if tied.any():
        top[tied] = np.argsort(neg[tied], axis=1, kind="stable")[:, :k]
    return top


def checked_probability_rows(probabilities: np.ndarray) -> np.ndarray:
    """[N, C] distributions as float32; ValueError unless 2-D with C > 0, finite and
    non-negative."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"probabilities must be a non-empty [N, C] batch, got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probabilities must be finite and non-negative")
    return probs


def checked_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """The distribution as a float32 vector; ValueError unless 1-D, finite, non-negative."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 1 or probs.size == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D vector, got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probabilities must be finite and non-negative")
    return probs


def encode_pseudo_labeled(image_bytes: bytes, probabilities: np.ndarray,
                          storage: str = "float32") -> bytes:
    """Serializes an image with the teacher's class distribution.

    ``label`` and ``prob`` are the argmax and top-1 value of the full distribution, whatever
    the storage. ``storage`` is "float32" (reference), "float16" or "topk:K".
    """
    probs = checked_probabilities(probabilities)
    return encode_pseudo_labeled_batch([image_bytes], probs[None], storage)[0]


def encode_pseudo_labeled_batch(images, probabilities: np.ndarray,
                                storage: str = "float32") -> list[bytes]:
    """`encode_pseudo_labeled` of a batch: encoded `images` with their [N, C] distributions.
    The checks, argmax and top-k run over the whole batch and every record is serialized from
    one Example whose values are replaced: 6-22 us of CPU a record instead of 70-170 us one at
    a time, which labeling's write thread would spend holding Python's lock."""
    probs = checked_probability_rows(probabilities)
    if len(images) != len(probs):
        raise ValueError(f"{len(images)} images for {len(probs)} distributions")
    for image_bytes in images:
        _check_image_bytes(image_bytes)
    kind, k = parse_storage(storage, probs.shape[1])
    labels = probs.argmax(axis=1)
    firsts = probs[np.arange(len(probs)), labels].tolist()
    if kind == "float32":
        stored = {PROBS_KEY: _float_feature([0.0] * probs.shape[1])}
        rows = [{PROBS_KEY: row} for row in probs.tolist()]
    elif kind == "float16":
        stored = {PROBS_F16_KEY: _bytes_feature(b"")}
        rows = [{PROBS_F16_KEY: [row.tobytes()]} for row in probs.astype("<f2")]
    else:
        top = top_k_rows(probs, k)
        stored = {TOPK_INDICES_KEY: _int64_feature([0] * k),
                  TOPK_VALUES_KEY: _float_feature([0.0] * k)}
        rows = [{TOPK_INDICES_KEY: indices, TOPK_VALUES_KEY: values} for indices, values in
                zip(top.tolist(), np.take_along_axis(probs, top, 1).tolist(), strict=True)]
    example = tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: _bytes_feature(b""), PSEUDO_LABEL_KEY: _int64_feature([0]),
        PSEUDO_PROB_KEY: _float_feature([0.0]), **stored}))
    values = {key: getattr(feature, feature.WhichOneof("kind")).value
              for key, feature in example.features.feature.items()}
    out = []
    for image_bytes, label, first, row in zip(images, labels.tolist(), firsts, rows,
                                              strict=True):
        values[IMAGE_KEY][0] = bytes(image_bytes)
        values[PSEUDO_LABEL_KEY][0], values[PSEUDO_PROB_KEY][0] = label, first
        for key, row_values in row.items():
            values[key][:] = row_values
        out.append(example.SerializeToString())
    return out


def parse_labeled(serialized: tf.Tensor, label_offset: int = 0) -> dict[str, tf.Tensor]:
    """Parses one labeled example: {"image": encoded bytes, "label": int64 minus offset}."""
    parsed = tf.io.parse_single_example(serialized, {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    })
    return {"image": parsed[IMAGE_KEY], "label": parsed[LABEL_KEY] - label_offset}


def parse_unlabeled(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses the image of any example that has ``image/encoded``."""
    parsed = tf.io.parse_single_example(
        serialized, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
    return {"image": parsed[IMAGE_KEY]}


def topk_dense(top_idx: tf.Tensor, top_val: tf.Tensor, num_classes: int,
               rest: tf.Tensor | None = None) -> tf.Tensor:
    """The dense float32 [num_classes] distribution of k stored (index, value) pairs.

    The k values are kept exactly; the mass they leave (`rest`, else 1 - their sum) is spread
    evenly over the other classes, the maximum-entropy completion. Each of those gets at most
    the smallest stored value, so the argmax is unchanged.
    """
    tf.debugging.assert_less(top_idx, tf.cast(num_classes, tf.int64),
                             message=f"top-k index >= num_classes={num_classes}")
    if rest is None:
        rest = 1.0 - tf.reduce_sum(top_val)
    others = tf.cast(num_classes - tf.size(top_idx), tf.float32)
    residual = tf.maximum(rest, 0.0) / tf.maximum(others, 1.0)
    stored = tf.scatter_nd(top_idx[:, None], tf.ones_like(top_val), [num_classes])
    dense = tf.scatter_nd(top_idx[:, None], top_val, [num_classes])
    return dense + (1.0 - stored) * residual


def _dense_probabilities(parsed: dict[str, tf.Tensor], num_classes: int) -> tf.Tensor:
    """Rebuilds the dense float32 distribution from whichever storage form is present."""
    f32 = parsed[PROBS_KEY]
    f16 = tf.io.decode_raw(parsed[PROBS_F16_KEY], tf.float16, little_endian=True)
    top_idx = parsed[TOPK_INDICES_KEY]
    top_val = parsed[TOPK_VALUES_KEY]
    has_f32 = tf.size(f32) > 0
    has_f16 = tf.size(f16) > 0
    has_topk = tf.size(top_idx) > 0
    present = tf.add_n([tf.cast(flag, tf.int32) for flag in (has_f32, has_f16, has_topk)])
    checks = [
        tf.debugging.assert_equal(
            present, 1, message="pseudo-labeled record must hold exactly one of "
            f"'{PROBS_KEY}', '{PROBS_F16_KEY}' or '{TOPK_INDICES_KEY}'+'{TOPK_VALUES_KEY}'"),
    ]
    with tf.control_dependencies(checks):

        def from_f32():
            tf.debugging.assert_equal(
                tf.size(f32), num_classes,
                message=f"'{PROBS_KEY}' length differs from num_classes={num_classes}")
            return tf.identity(f32)

        def from_f16():
            tf.debugging.assert_equal(
                tf.size(f16), num_classes,
                message=f"'{PROBS_F16_KEY}' length differs from num_classes={num_classes}")
            return tf.cast(f16, tf.float32)

        def from_topk():
            tf.debugging.assert_equal(tf.size(top_idx), tf.size(top_val),
                                      message="top-k indices and values differ in length")
            return topk_dense(top_idx, top_val, num_classes)

        probs = tf.case([(has_f32, from_f32), (has_f16, from_f16)], default=from_topk,
                        exclusive=False)
    return tf.ensure_shape(probs, [num_classes])


def parse_pseudo_labeled(serialized: tf.Tensor, num_classes: int) -> dict[str, tf.Tensor]:
    """Parses a pseudo-labeled example in any storage form.

    Returns {"image", "probabilities" (float32 [num_classes]), "label" (int64), "prob"}.
    """
    parsed = tf.io.parse_single_example(serialized, {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        PROBS_KEY: tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
        PROBS_F16_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        TOPK_INDICES_KEY: tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
        TOPK_VALUES_KEY: tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
        PSEUDO_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        PSEUDO_PROB_KEY: tf.io.FixedLenFeature([], tf.float32),
    })
    return {
        "image": parsed[IMAGE_KEY],
        "probabilities": _dense_probabilities(parsed, num_classes),
        "label": parsed[PSEUDO_LABEL_KEY],
        "prob": parsed[PSEUDO_PROB_KEY],
    }


@contextlib.contextmanager
def atomic_tfrecord_writer(path: str,
                           compression: str | None = None) -> Iterator[tf.io.TFRecordWriter]:
    """Yields a TFRecordWriter on ``<dir>/.<name>.tmp-<host>-<pid>``; renames it to ``path`` on
    a clean exit and deletes it on an exception, so ``path`` only ever holds a complete file."""
    if not os.path.basename(path):
        raise ValueError(f"atomic_tfrecord_writer needs a file path, got {path!r}")
    options = tf.io.TFRecordOptions(compression_type=compression or "")
    with atomic_output(path) as temporary:
        writer = tf.io.TFRecordWriter(temporary, options=options)
        try:
            yield writer
        finally:
            writer.close()
