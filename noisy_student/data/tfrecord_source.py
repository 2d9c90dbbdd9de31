"""Reading TFRecord files: glob, per-host sharding, interleave, damaged-file detection.

A file that is truncated or corrupt stops yielding at the damage. It is detected by comparing
the bytes its records account for (record length + 16 framing bytes each) with the file size,
so reading stays in graph mode. Files must be uncompressed (the reference format).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import tensorflow as tf
from absl import logging

from noisy_student.atomic_io import is_temp_name
from noisy_student.data.bad_data import DataStats, report_bad, text

RECORD_FRAMING_BYTES = 16  # uint64 length, uint32 CRC of the length, uint32 CRC of the data
READ_CYCLE_LENGTH = 16
READ_BUFFER_BYTES = 8 * 1024 * 1024


def list_files(file_pattern: str | Sequence[str]) -> list[str]:
    """Sorted files matching a glob, a comma-separated list of globs, or a list of globs.

    Raises FileNotFoundError naming any pattern that matches nothing.
    """
    patterns = (file_pattern.split(",") if isinstance(file_pattern, str)
                else list(file_pattern))
    files: set[str] = set()
    for pattern in (p.strip() for p in patterns):
        matched = [f for f in tf.io.gfile.glob(pattern)
                   if not is_temp_name(os.path.basename(f))]  # a writer's unfinished output
        if not matched:
            raise FileNotFoundError(
                f"No files match {pattern!r}; check the path (a glob such as '/data/train-*' "
                "is expected) or build TFRecords with noisy-student-build-tfrecords")
        files.update(matched)
    return sorted(files)


class FileScan(NamedTuple):
    """What one pass over a TFRecord file found: whole records up to any damage."""

    path: str
    num_records: int
    bytes_read: int
    size: int

    @property
    def damaged(self) -> bool:
        return self.bytes_read != self.size

    def damage_text(self) -> str:
        return (f"Damaged TFRecord file {self.path}: its {self.num_records} readable records "
                f"cover {self.bytes_read} of its {self.size} bytes (truncated or corrupt after "
                f"record {self.num_records - 1})")


def scan_file(path: str, *, strict: bool = False) -> FileScan:
    """Counts the records of ``path`` up to any damage; a damaged file is logged (or, with
    ``strict``, raises ValueError naming the file and the last good record)."""
    size = tf.io.gfile.stat(path).length
    count, consumed = (
        tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES)
        .ignore_errors()
        .reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
                lambda state, record: (state[0] + 1, state[1] + RECORD_FRAMING_BYTES
                                       + tf.cast(tf.strings.length(record), tf.int64))))
    return report_damage(FileScan(path, int(count), int(consumed), size), strict=strict)


def report_damage(scan: FileScan, *, strict: bool) -> FileScan:
    """Logs a damaged file (or, with ``strict``, raises ValueError naming it and its last good
    record); returns ``scan``."""
    if scan.damaged:
        if strict:
            raise ValueError(f"{scan.damage_text()}; rewrite that file, or drop strict data "
                             "checking to skip the rest of it")
        logging.warning("%s; the rest of the file is skipped", scan.damage_text())
    return scan


def count_records(source, *, strict: bool = False) -> int:
    """The readable records of every file of a pattern (or list of patterns; see list_files),
    each counted by `scan_file`."""
    return sum(scan_file(path, strict=strict).num_records for path in list_files(source))


def shard_files(files: list[str], input_context: tf.distribute.InputContext | None, *,
                training: bool = False) -> tuple[list[str], tuple[int, int] | None]:
    """This input pipeline's files; if there are fewer files than pipelines, all files and a
    (num_pipelines, pipeline_id) record-level shard to apply after reading. Training refuses
    that (ValueError): every host would read every file, and mixing would suffer."""
    if input_context is None or input_context.num_input_pipelines == 1:
        return files, None
    count, index = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) >= count:
        if len(files) % count:
            logging.warning("%d files over %d input pipelines: shards are unequal",
                            len(files), count)
        return files[index::count], None
    if training:
        raise ValueError(
            f"Only {len(files)} training files ({os.path.dirname(files[0])}/...) for {count} "
            f"input pipelines: each pipeline reads whole files. Write at least {count} (better "
            f"{4 * count}) shards, e.g. --num_shards of noisy-student-build-tfrecords or "
            "--filter_output_shards, or use fewer workers")
    logging.warning("Only %d files for %d input pipelines: every pipeline reads all files and "
                    "keeps every %d-th record (write more shards to avoid this)",
                    len(files), count, count)
    return files, (count, index)


def file_sizes(files: list[str]) -> list[int]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda f: tf.io.gfile.stat(f).length, files))


def read_checked(filename: tf.Tensor, size: tf.Tensor, stats: DataStats,
                  strict: bool) -> tf.data.Dataset:
    """Records of one file as {"file", "index", "record", "end": False}; at the end the
    consumed bytes are compared with the file size and a damaged file is counted (or raises
    when strict)."""
    records = (tf.data.TFRecordDataset(filename, buffer_size=READ_BUFFER_BYTES)
               .ignore_errors(log_warning=True)
               .enumerate()
               .map(lambda i, r: {"file": filename, "index": i, "record": r,
                                  "end": tf.constant(False)}))
    end_marker = tf.data.Dataset.from_tensors(
        {"file": filename, "index": tf.constant(-1, tf.int64), "record": tf.constant(""),
         "end": tf.constant(True)})

    def count_bytes(consumed, element):
        """Adds the record's bytes; at the end marker, checks them against the file size."""
        length = tf.cast(tf.strings.length(element["record"]), tf.int64) + RECORD_FRAMING_BYTES
        consumed = consumed + tf.where(element["end"], tf.constant(0, tf.int64), length)

        def at_end():
            damaged = tf.not_equal(consumed, size)
            message = text(
                "Damaged TFRecord file ", filename, ": its records cover ", consumed, " of its ",
                size, " bytes (truncated or corrupt); ",
                "strict=True, pass strict=False to skip the rest of such files" if strict
                else "the rest of the file was skipped")
            if strict:
                report = report_bad(damaged, message, strict=True)
            else:
                report = tf.cond(damaged, lambda: tf.py_function(
                    stats.note_damaged, [filename, size - consumed, message], []), tf.no_op)
            with tf.control_dependencies([report]):
                return tf.group(stats.increment("files"),
                                stats.increment("damaged_files", tf.cast(damaged, tf.int64)))

        done = tf.cond(element["end"], at_end, tf.no_op)
        with tf.control_dependencies([done]):
            return consumed, tf.nest.map_structure(tf.identity, element)

    return (records.concatenate(end_marker)
            .scan(tf.constant(0, tf.int64), count_bytes)
            .filter(lambda element: tf.logical_not(element["end"])))


def interleave_files(files: list[str], read, *, training: bool,
                     input_context: tf.distribute.InputContext | None, deterministic: bool,
                     seed: int | None, cycle_length: int = READ_CYCLE_LENGTH,
                     with_files=None) -> tf.data.Dataset:
    """``read(file, *values)`` of this input pipeline's files (sharded by file), interleaved
    `cycle_length` files at a time; ``with_files(files)`` gives the value columns that go with
    them (e.g. their sizes). Training shuffles the file order (again on every repetition)."""
    files, record_shard = shard_files(files, input_context, training=training)
    columns = (tf.constant(files, tf.string), *(
        tf.constant(c, tf.int64 if isinstance(c[0], int) else tf.string)
        for c in (with_files(files) if with_files else ())))
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(
        read, cycle_length=max(1, min(cycle_length, len(files))), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if record_shard is not None:
        dataset = dataset.shard(*record_shard)
    return dataset


def tfrecord_dataset(files: list[str], *, training: bool,
                     input_context: tf.distribute.InputContext | None, stats: DataStats,
                     strict: bool, deterministic: bool, seed: int | None,
                     cycle_length: int = READ_CYCLE_LENGTH) -> tf.data.Dataset:
    """Serialized records as {"file", "index", "record", "end"} dicts from ``files`` (as listed by
    :func:`list_files`), sharded for this input pipeline and interleaved (`interleave_files`).
    """
    return interleave_files(
        files, lambda f, n: read_checked(f, n, stats, strict), with_files=lambda f: [
            file_sizes(f)], training=training, input_context=input_context,
        deterministic=deterministic, seed=seed, cycle_length=cycle_length)
