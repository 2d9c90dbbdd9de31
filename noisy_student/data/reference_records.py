"""Reference pseudo-label records: where the image is, not the image.

A reference record names its image by source file (basename) and record index in that file
and holds the teacher's top-K distribution, so it costs under 200 bytes at 1,000 classes where a
copy record costs the image plus its distribution (~21 KB for a 224 px JPEG). Features:

| feature | type | meaning |
| --- | --- | --- |
| ``source`` | bytes | basename of the unlabeled file holding the image |
| ``index`` | int64 | 0-based record index of the image in that file |
| ``label`` / ``prob`` | int64 / float | argmax and top-1 probability (as in copy records) |
| ``topk/indices`` | int64 list | the K largest classes, largest first |
| ``topk/values`` | bytes | their probabilities, little-endian float16 (as the copy default) |
| ``topk/rest`` | float | the mass of the other classes (1 - sum of the K values) |
| ``copies`` | int64 | times the student reads it (filtered records; default 1) |

Labeling writes one reference shard per source shard, in source order; filtering keeps that
order, so the student reads each filtered shard beside its source shard in one stream
(`noisy_student.data.reference_join`).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from noisy_student.data.records import (
    IMAGE_KEY,
    PSEUDO_LABEL_KEY,
    PSEUDO_PROB_KEY,
    checked_probabilities,
    checked_probability_rows,
    top_k_rows,
    topk_dense,
)

SOURCE_KEY = "source"
INDEX_KEY = "index"
TOPK_INDICES_KEY = "topk/indices"
TOPK_VALUES_KEY = "topk/values"
TOPK_REST_KEY = "topk/rest"
COPIES_KEY = "copies"
DEFAULT_TOP_K = 5


def _feature(kind: str, values) -> tf.train.Feature:
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if kind == "int64":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def encode_reference(source: str, index: int, probabilities: np.ndarray,
                     k: int = DEFAULT_TOP_K) -> bytes:
    """Serializes a reference record: image `index` of file `source` (a basename) with the
    top-`k` classes of `probabilities` and the mass left to the others."""
    probs = checked_probabilities(probabilities)
    return encode_references(source, [index], probs[None], k)[0]


def encode_references(source: str, indices, probabilities: np.ndarray,
                      k: int = DEFAULT_TOP_K) -> list[bytes]:
    """`encode_reference` of a batch: images `indices` of `source` with their [N, C]
    distributions. The checks and the top-k run over the whole batch and every record is
    serialized from one Example whose values are replaced (~4 us a record, against ~200 us for
    building and sorting each anew: labeling's write path at 300M images)."""
    probs = checked_probability_rows(probabilities)
    if not 1 <= k <= probs.shape[1]:
        raise ValueError(f"top-k size {k} must be in [1, num_classes={probs.shape[1]}]")
    indices = [int(i) for i in indices]
    if len(indices) != len(probs):
        raise ValueError(f"{len(indices)} indices for {len(probs)} distributions")
    if (indices and min(indices) < 0) or "/" in source:
        raise ValueError(f"a reference needs a file basename and an index >= 0, got "
                         f"{source!r}, {min(indices, default=0)}")
    top = top_k_rows(probs, k)
    values = np.take_along_axis(probs, top, 1)
    rests = np.maximum(0.0, 1.0 - values.sum(axis=1, dtype=np.float64)).tolist()
    halves = values.astype("<f2")
    example = tf.train.Example(features=tf.train.Features(feature={
        SOURCE_KEY: _feature("bytes", [source.encode()]),
        INDEX_KEY: _feature("int64", [0]),
        PSEUDO_LABEL_KEY: _feature("int64", [0]),
        PSEUDO_PROB_KEY: _feature("float", [0.0]),
        TOPK_INDICES_KEY: _feature("int64", [0] * k),
        TOPK_VALUES_KEY: _feature("bytes", [b""]),
        TOPK_REST_KEY: _feature("float", [0.0]),
    }))
    feature = example.features.feature
    index_value = feature[INDEX_KEY].int64_list.value
    label_value = feature[PSEUDO_LABEL_KEY].int64_list.value
    prob_value = feature[PSEUDO_PROB_KEY].float_list.value
    top_indices = feature[TOPK_INDICES_KEY].int64_list.value
    top_values = feature[TOPK_VALUES_KEY].bytes_list.value
    rest_value = feature[TOPK_REST_KEY].float_list.value
    out = []
    for i, (index, classes, first) in enumerate(zip(indices, top.tolist(),
                                                    values[:, 0].tolist(), strict=True)):
        index_value[0], label_value[0], prob_value[0] = index, classes[0], first
        top_indices[:] = classes
        top_values[0] = halves[i].tobytes()
        rest_value[0] = rests[i]
        out.append(example.SerializeToString())
    return out


@functools.lru_cache(maxsize=64)
def _copies_suffix(copies: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(
        feature={COPIES_KEY: _feature("int64", [copies])})).SerializeToString()


def with_copies(serialized: bytes, copies: int) -> bytes:
    """`serialized` with ``copies`` set: serialized Examples concatenate into their union (a
    protobuf merge), so the record bytes stay as they are and a small suffix is appended."""
    return serialized + _copies_suffix(int(copies))


def is_reference(serialized: bytes) -> bool:
    """True for a reference record (an index and no image bytes)."""
    features = tf.train.Example.FromString(serialized).features.feature
    return INDEX_KEY in features and IMAGE_KEY not in features


def parse_reference(serialized: tf.Tensor, num_classes: int) -> dict[str, tf.Tensor]:
    """Parses a reference record: {"source", "index", "copies", "label", "prob",
    "probabilities" (dense float32 [num_classes])}."""
    parsed = tf.io.parse_single_example(serialized, {
        SOURCE_KEY: tf.io.FixedLenFeature([], tf.string),
        INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
        COPIES_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=1),
        PSEUDO_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        PSEUDO_PROB_KEY: tf.io.FixedLenFeature([], tf.float32),
        TOPK_INDICES_KEY: tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True),
        TOPK_VALUES_KEY: tf.io.FixedLenFeature([], tf.string),
        TOPK_REST_KEY: tf.io.FixedLenFeature([], tf.float32),
    })
    values = tf.cast(tf.io.decode_raw(parsed[TOPK_VALUES_KEY], tf.float16, little_endian=True),
                     tf.float32)
    tf.debugging.assert_equal(tf.size(parsed[TOPK_INDICES_KEY]), tf.size(values),
                              message="top-k indices and values differ in length")
    return {
        "source": parsed[SOURCE_KEY], "index": parsed[INDEX_KEY], "copies": parsed[COPIES_KEY],
        "label": parsed[PSEUDO_LABEL_KEY], "prob": parsed[PSEUDO_PROB_KEY],
        "probabilities": tf.ensure_shape(
            topk_dense(parsed[TOPK_INDICES_KEY], values, num_classes,
                       parsed[TOPK_REST_KEY]), [num_classes]),
    }
