"""Reference pseudo-label records read beside the images they name, one stream per file pair.

A reference shard (labeling or filter output) holds records of one unlabeled file, in that
file's order. Its images are joined back by reading both files front to back together: the
gaps between consecutive record indices say which source records to skip, so there is no
random access per image. Each joined record is then repeated by its ``copies`` (the balancing
of the filter). A damaged source file is counted like any other (the rest of it is skipped).
"""

from __future__ import annotations

import os

import tensorflow as tf

from noisy_student.atomic_io import read_json
from noisy_student.data.bad_data import DataStats, text
from noisy_student.data.reference_records import COPIES_KEY, INDEX_KEY, SOURCE_KEY, is_reference
from noisy_student.data.tfrecord_source import (
    READ_CYCLE_LENGTH,
    file_sizes,
    interleave_files,
    list_files,
    read_checked,
)

STATS_NAME = "stats.json"  # the filter's statistics, which map its outputs to their sources
INFO_DIR = "info"  # labeling's per-shard info files, which name each shard's input


def is_reference_file(path: str) -> bool:
    """True when the first record of `path` is a reference record."""
    first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    return first is not None and is_reference(first.numpy())


def _recorded_source(path: str, filter_stats: dict | None) -> tuple[str, int | None]:
    """(source basename, source size when labeled, if known) of one reference shard."""
    name = os.path.basename(path)
    if filter_stats and name in filter_stats.get("output_sources", {}):
        source, size = filter_stats["output_sources"][name]
        return source, size
    info = read_json(os.path.join(os.path.dirname(path), INFO_DIR, name + ".json"))
    if info is not None:
        return info["input"], info.get("input_bytes")
    first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    if first is None:
        raise ValueError(f"{path}: an empty reference shard without an info or stats file; "
                         "delete it or relabel")
    feature = tf.train.Example.FromString(first.numpy()).features.feature[SOURCE_KEY]
    return feature.bytes_list.value[0].decode(), None


def source_files(files: list[str], source_pattern) -> list[str]:
    """The unlabeled file each reference shard names, from `source_pattern` (the labeling's
    input): FileNotFoundError when it does not match it, ValueError when it changed since."""
    if not source_pattern:
        raise ValueError(f"{files[0]} holds reference pseudo labels; pass the unlabeled files "
                         "they were labeled from (source_data, --unlabel_data)")
    by_name = {os.path.basename(p): p for p in list_files(source_pattern)}
    stats = {d: read_json(os.path.join(d, STATS_NAME)) for d in {os.path.dirname(f) for f in files}}
    sources = []
    for path in files:
        name, size = _recorded_source(path, stats[os.path.dirname(path)])
        if name not in by_name:
            raise FileNotFoundError(
                f"{path} names its images in {name}, which {source_pattern!r} does not match; "
                "pass the unlabeled files it was labeled from (--unlabel_data)")
        sources.append(by_name[name])
        if size is not None and tf.io.gfile.stat(by_name[name]).length != size:
            raise ValueError(f"{by_name[name]} changed since it was labeled ({size} bytes then, "
                             f"{tf.io.gfile.stat(by_name[name]).length} now); restore it or "
                             "relabel (a new --run_dir)")
    return sources


def _read_pair(ref_path: tf.Tensor, source_path: tf.Tensor, source_size: tf.Tensor,
               stats: DataStats, strict: bool) -> tf.data.Dataset:
    """{"file", "index", "record" (source record), "ref"} for each reference record of
    `ref_path`, each repeated by its copies."""
    refs = tf.data.TFRecordDataset(ref_path)
    spec = {INDEX_KEY: tf.io.FixedLenFeature([], tf.int64),
            COPIES_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=1)}

    def gap(previous, ref):
        index = tf.io.parse_single_example(ref, spec)[INDEX_KEY]
        skip = index - previous - 1
        check = tf.debugging.Assert(skip >= 0, [text(
            ref_path, ": reference records out of source order (or repeated) at index ", index,
            "; use files the labeling stage wrote")], summarize=1)
        with tf.control_dependencies([check]):
            return index, tf.identity(skip)

    # True for each source record a reference names, False for those in between and after.
    keep = (refs.scan(tf.constant(-1, tf.int64), gap)
            .flat_map(lambda skip: tf.data.Dataset.from_tensors(False).repeat(skip)
                      .concatenate(tf.data.Dataset.from_tensors(True)))
            .concatenate(tf.data.Dataset.from_tensors(False).repeat()))
    source = read_checked(source_path, source_size, stats, strict)  # read to its end: damage
    kept = (tf.data.Dataset.zip(source, keep).filter(lambda _, k: k)
            .map(lambda element, _: element))

    def repeated(element, ref):
        copies = tf.io.parse_single_example(ref, spec)[COPIES_KEY]
        joined = {"file": element["file"], "index": element["index"],
                  "record": element["record"], "ref": ref}
        return tf.data.Dataset.from_tensors(joined).repeat(copies)

    return tf.data.Dataset.zip(kept, refs).flat_map(repeated)


def joined_dataset(files: list[str], *, source_pattern, training: bool,
                   input_context: tf.distribute.InputContext | None, stats: DataStats,
                   strict: bool, deterministic: bool, seed: int | None,
                   cycle_length: int = READ_CYCLE_LENGTH) -> tf.data.Dataset:
    """Joined records {"file", "index", "record", "ref"} of reference shards `files` and their
    unlabeled files (`source_pattern`), sharded by file pair and interleaved like
    `tfrecord_dataset`."""

    def with_sources(mine: list[str]) -> list[list]:
        sources = source_files(mine, source_pattern)
        return [sources, file_sizes(sources)]

    return interleave_files(
        files, lambda r, s, n: _read_pair(r, s, n, stats, strict), with_files=with_sources,
        training=training, input_context=input_context, deterministic=deterministic,
        seed=seed, cycle_length=cycle_length)
