"""One pseudo-labeled shard through the filter, in one pass over its records: its class x
confidence counts (only when labeling did not store them), and its kept records written to the
shard's own output files.

Only each record's ``label`` and ``prob`` are parsed; the record bytes are written unchanged.
A shard's draws depend on the run seed and the shard alone, so whichever worker filters it
writes the same files:

* keep/copy draws: one U[0, 1) per record from the stream of the single-process filter,
  advanced to the shard's first record (the records of the shards before it), so the copies
  of every image are those one process reading every shard in order would give;
* shuffle and dealing over the shard's output files: a generator seeded by (seed, shard).

Copy records (image inside) are written as many times as their copies, shuffled in chunks and
dealt at random over the shard's output files. Reference records (image elsewhere,
`noisy_student.data.reference_records`) are written once, in source order, with a ``copies``
feature that the student's pipeline repeats them by.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from noisy_student.data.records import PSEUDO_LABEL_KEY, PSEUDO_PROB_KEY, atomic_tfrecord_writer
from noisy_student.data.reference_records import with_copies
from noisy_student.data.tfrecord_source import (
    READ_BUFFER_BYTES,
    RECORD_FRAMING_BYTES,
    FileScan,
    report_damage,
)
from noisy_student.pseudo_labels.balance import NUM_BINS, bin_counts, copies_per_image

_LABEL_SPEC = {PSEUDO_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
               PSEUDO_PROB_KEY: tf.io.FixedLenFeature([], tf.float32)}
COPY_STREAM, DEAL_STREAM = 0, 1  # children of SeedSequence(seed)


class Batch(NamedTuple):
    serialized: np.ndarray | None
    labels: np.ndarray
    probs: np.ndarray
    num_bytes: int


def _batches(path: str, num_classes: int, with_records: bool,
             batch_size: int = 4096) -> Iterator[Batch]:
    """The shard's records in order, as NumPy batches of (records, labels, confidences); reading
    stops at any damage (the caller compares the bytes read with the file size).

    The dataset has no map: each batch is parsed by eager ops. A mapped function would be traced
    anew for every shard's dataset (~0.3 s CPU a shard, more than its 5,000 records cost)."""
    dataset = (tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES).ignore_errors()
               .batch(batch_size).prefetch(2))
    try:
        for serialized in dataset:
            parsed = tf.io.parse_example(serialized, _LABEL_SPEC)
            labels, probs = parsed[PSEUDO_LABEL_KEY].numpy(), parsed[PSEUDO_PROB_KEY].numpy()
            records = serialized.numpy()
            _checked(path, labels, probs, num_classes)
            size = sum(map(len, records)) + RECORD_FRAMING_BYTES * len(records)
            yield Batch(records if with_records else None, labels, probs, size)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(f"{path}: cannot read pseudo-labeled records ({err.message}); is it a "
                         f"file the labeling stage wrote?") from err


def _checked(path: str, labels: np.ndarray, probs: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: label {int(labels.max())} is outside 0..{num_classes - 1}; "
                         f"pass the num_classes the teacher was labeled with")
    if np.isnan(probs).any() or (probs < 0).any():
        raise ValueError(f"{path}: a record has a NaN or negative confidence; relabel that shard")


def _scan(path: str, num_records: int, num_bytes: int, strict: bool) -> FileScan:
    return report_damage(FileScan(path, num_records, num_bytes, tf.io.gfile.stat(path).length),
                         strict=strict)


def read_counts(path: str, num_classes: int, *, strict: bool) -> tuple[np.ndarray, FileScan]:
    """The class x bin counts of a shard whose labeling stored none (older or foreign files):
    one read of its labels and confidences, up to any damage."""
    counts = np.zeros((num_classes, NUM_BINS), dtype=np.int64)
    num_records = num_bytes = 0
    for batch in _batches(path, num_classes, with_records=False):
        counts += bin_counts(batch.labels, batch.probs, num_classes)
        num_records += len(batch.labels)
        num_bytes += batch.num_bytes
    return counts, _scan(path, num_records, num_bytes, strict)


def copy_draws(seed: int, first_record: int) -> np.random.Generator:
    """The keep/copy uniforms of the single-process stream, from record `first_record` on (one
    PCG64 step per float64 draw, so advancing skips exactly the earlier records' draws)."""
    bits = np.random.PCG64(np.random.SeedSequence(seed).spawn(2)[COPY_STREAM])
    bits.advance(first_record)
    return np.random.Generator(bits)


def deal_generator(seed: int, shard: int) -> np.random.Generator:
    """The shuffle and dealing generator of one shard: depends on the seed and shard only."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(DEAL_STREAM, shard)))


class _Dealer:
    """Shuffles copy records in chunks and deals each to one of the shard's output files at
    random; reference records go to the one file in order."""

    def __init__(self, writers: list, rng: np.random.Generator, shuffle: bool, chunk_size: int):
        self.writers, self.rng, self.shuffle, self.chunk_size = writers, rng, shuffle, chunk_size
        self.pending: list[bytes] = []

    def add(self, record: bytes, copies: int) -> None:
        self.pending.extend([record] * copies)
        if len(self.pending) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        records = self.pending
        if self.shuffle:
            records = [records[i] for i in self.rng.permutation(len(records))]
        targets = self.rng.integers(len(self.writers), size=len(records))
        for record, target in zip(records, targets, strict=True):
            self.writers[target].write(record)
        self.pending = []


def filter_shard(path: str, output_paths: list[str], *, shard: int, first_record: int,
                 plan: dict, strict: bool) -> dict:
    """Writes the kept records of one pseudo-labeled shard to `output_paths` (each renamed into
    place only when all are complete); returns its counts: records read, kept and written per
    class, bytes left unread after any damage."""
    settings = plan["settings"]
    num_classes, num_image = settings["num_classes"], plan["num_image_per_class"]
    thresholds, totals = np.asarray(plan["thresholds"]), np.asarray(plan["totals"])
    draws = copy_draws(settings["seed"], first_record)
    kept = np.zeros(num_classes, dtype=np.int64)
    written = np.zeros(num_classes, dtype=np.int64)
    num_records = num_bytes = 0
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(atomic_tfrecord_writer(p)) for p in output_paths]
        dealer = _Dealer(writers, deal_generator(settings["seed"], shard), settings["shuffle"],
                         settings["chunk_size"])
        for batch in _batches(path, num_classes, with_records=True):
            copies = copies_per_image(batch.labels, batch.probs, thresholds, totals, num_image,
                                      draws.random(len(batch.labels)),
                                      max_prob=settings["max_prob"],
                                      upsample=settings["upsample"], use_all=settings["use_all"])
            np.add.at(kept, batch.labels, (copies > 0).astype(np.int64))
            np.add.at(written, batch.labels, copies)
            num_records += len(batch.labels)
            num_bytes += batch.num_bytes
            for record, n in zip(batch.serialized, copies.tolist(), strict=True):
                if not n:
                    continue
                if plan["reference"]:
                    writers[0].write(with_copies(record, n))
                else:
                    dealer.add(record, n)
        dealer.flush()
        scan = _scan(path, num_records, num_bytes, strict)  # strict: raises, temps discarded
    return {"input": os.path.basename(path), "num_records": num_records,
            "kept_per_class": kept.tolist(), "written_per_class": written.tolist(),
            "outputs": [os.path.basename(p) for p in output_paths],
            "bytes_unread": scan.size - scan.bytes_read}
