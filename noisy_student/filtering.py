"""Filter and balance pseudo-labeled data, the rule of the reference `filter_unlabel.py`.

Each image belongs to its teacher class c (argmax) with confidence p (the top-1 probability).

* Confidence grid: 101 thresholds t_j = j/100, j = 0..100. Bin j holds t_j <= p < t_{j+1}
  (bin 100 holds p >= 1.0, which float error can produce).
* Threshold of class c: walk j from 100 down, skipping thresholds t_j >= max_prob and stopping
  below min_threshold, adding bin counts; stop at the first j whose cumulative count reaches
  num_image. If it never does, stop at min_threshold. The cumulative count there is total_c.
* Keep every image of class c with threshold_c <= p <= max_prob, with num_image/total_c copies
  under stochastic rounding: the integer part, plus one with probability equal to the fraction.
  Big classes are thus subsampled to about num_image (at bin granularity), small ones duplicated.
  upsample=False caps the copies at 1; use_all keeps every image above min_threshold once.

The core is pure NumPy (`confidence_bins`, `bin_counts`, `class_thresholds`, `copy_rates`,
`copies_per_image`); `filter_and_balance` is the TFRecord stage around it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import (
    discard,
    move_into_place,
    read_json,
    remove_stale_temps,
    temp_path,
    write_json_atomic,
)
from noisy_student.data.records import parse_pseudo_labeled
from noisy_student.data.shards import check_no_stale_shards, shard_name
from noisy_student.data.tfrecord_source import scan_file
from noisy_student.plots import class_labels, new_figure, write_png

NUM_BINS = 101
BIN_EDGES = np.arange(NUM_BINS, dtype=np.float64) / 100.0  # exactly j/100, as Python computes it
STATS_NAME = "stats.json"
HISTOGRAM_NAME = "confidence_histogram.png"
OUTPUT_SPLIT = "train"

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- NumPy core


def _grid_index(threshold: float, name: str) -> int:
    index = round(threshold * 100)
    if not 0 <= index < NUM_BINS or abs(index - threshold * 100) > 1e-6:
        raise ValueError(f"{name}={threshold} must be on the 0.01 grid between 0 and 1 (e.g. 0.3)")
    return index


def confidence_bins(probs: np.ndarray) -> np.ndarray:
    """Bin index (0..100) of each confidence: the largest j with j/100 <= p.

    Comparisons are made in float64 against j/100, as the reference does.
    """
    p = np.asarray(probs, dtype=np.float64)
    if np.isnan(p).any() or (p < 0).any():
        raise ValueError("confidences must be non-negative numbers (found NaN or a negative value)")
    return np.searchsorted(BIN_EDGES, p, side="right") - 1


def bin_counts(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [num_classes, 101]: number of images of each class in each confidence bin."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}.."
                         f"{labels.max()}; is num_classes right?")
    flat = labels * NUM_BINS + confidence_bins(probs)
    return np.bincount(flat, minlength=num_classes * NUM_BINS).reshape(num_classes, NUM_BINS)


def class_thresholds(counts: np.ndarray, num_image: int, *, min_threshold: float = 0.3,
                     max_prob: float = 2.0, use_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (threshold float64 [C], total int64 [C]) from `bin_counts` output.

    total_c is the number of images in the bins from the threshold up to (not including)
    max_prob: the count the balancing divides by.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[1] != NUM_BINS:
        raise ValueError(f"counts must have shape [num_classes, {NUM_BINS}], got {counts.shape}")
    if num_image < 1:
        raise ValueError(f"num_image must be at least 1, got {num_image}")
    lowest = _grid_index(min_threshold, "min_threshold")
    if max_prob <= BIN_EDGES[lowest]:
        raise ValueError(f"max_prob={max_prob} leaves no bin at or above "
                         f"min_threshold={min_threshold}")
    thresholds = np.empty(len(counts), dtype=np.float64)
    totals = np.zeros(len(counts), dtype=np.int64)
    for c, row in enumerate(counts):
        total, chosen = 0, lowest
        for j in range(NUM_BINS - 1, lowest - 1, -1):
            if BIN_EDGES[j] >= max_prob:
                continue
            total += int(row[j])
            if not use_all and total >= num_image:
                chosen = j
                break
        thresholds[c], totals[c] = BIN_EDGES[chosen], total
    return thresholds, totals


def copy_rates(totals: np.ndarray, num_image: int, *, upsample: bool = True,
               use_all: bool = False) -> np.ndarray:
    """Expected copies per kept image of each class: num_image / total_c (0 for empty classes)."""
    totals = np.asarray(totals, dtype=np.float64)
    if use_all:
        return np.ones_like(totals)
    rates = np.divide(float(num_image), totals, out=np.zeros_like(totals), where=totals > 0)
    return np.minimum(rates, 1.0) if not upsample else rates


def copies_per_image(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
                     totals: np.ndarray, num_image: int, uniforms: np.ndarray, *,
                     max_prob: float = 2.0, upsample: bool = True,
                     use_all: bool = False) -> np.ndarray:
    """int64 [N]: how many times each image is written (0 = dropped).

    `uniforms` holds one U[0, 1) draw per image, so the result is a pure function of its inputs;
    an image with rate r gets floor(r) copies plus one more when its draw is below r - floor(r).
    """
    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    uniforms = np.asarray(uniforms, dtype=np.float64)
    if not labels.shape == p.shape == uniforms.shape:
        raise ValueError(f"labels, probs and uniforms need one entry per image, got shapes "
                         f"{labels.shape}, {p.shape}, {uniforms.shape}")
    selected = (p >= np.asarray(thresholds)[labels]) & (p <= max_prob)
    rate = copy_rates(totals, num_image, upsample=upsample, use_all=use_all)[labels]
    whole = np.floor(rate)
    copies = whole + (uniforms < rate - whole)
    return np.where(selected, copies, 0).astype(np.int64)


# ----------------------------------------------------------------------------- TFRecord stage


def _input_files(pattern: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no pseudo-labeled files match {pattern!r}; run labeling first "
                                f"or fix the pattern")
    return files


def _read_batches(path: str, num_classes: int, with_records: bool, batch_size: int = 2048):
    """Yields (labels, probs) or (serialized, labels, probs) NumPy batches of one file, in order."""

    def parse(serialized):
        parsed = parse_pseudo_labeled(serialized, num_classes)
        if with_records:
            return serialized, parsed["label"], parsed["prob"]
        return parsed["label"], parsed["prob"]

    dataset = (tf.data.TFRecordDataset(path).ignore_errors()  # stops at damage (scan_file)
               .map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(batch_size).prefetch(2))
    try:
        yield from dataset.as_numpy_iterator()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        raise ValueError(f"{path}: cannot read pseudo-labeled records ({err.message}); check "
                         f"num_classes") from err


def _checked(path: str, labels: np.ndarray, probs: np.ndarray, num_classes: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: label {int(labels.max())} is outside 0..{num_classes - 1}; "
                         f"pass the num_classes the teacher was labeled with")
    if np.isnan(probs).any() or (probs < 0).any():
        raise ValueError(f"{path}: a record has a NaN or negative confidence; relabel that shard")


def _file_signature(files: list[str]) -> list[list]:
    return [[os.path.basename(f), tf.io.gfile.stat(f).length] for f in files]


def _stats_complete(output_dir: str, stats: dict | None) -> bool:
    return stats is not None and all(
        tf.io.gfile.exists(os.path.join(output_dir, name)) for name in stats["output_files"])


def is_complete(output_dir: str) -> bool:
    """True once `filter_and_balance` has finished writing `output_dir`."""
    return _stats_complete(output_dir, read_json(os.path.join(output_dir, STATS_NAME)))


def histogram_figure(counts: np.ndarray, thresholds: np.ndarray,
                     class_names: Sequence[str] | None = None, max_panels: int = 20,
                     max_named_rows: int = 100):
    """Teacher confidence histogram per class, titled with the class names (indices without
    them): a grid of panels up to ``max_panels`` classes, else a heat map with a row per class
    (named up to ``max_named_rows`` classes)."""
    num_classes = len(counts)
    names = class_labels(class_names, num_classes)
    if num_classes <= max_panels:
        cols = math.ceil(math.sqrt(num_classes))
        rows = math.ceil(num_classes / cols)
        fig = new_figure(2.6 * cols, 2.2 * rows + 0.4, dpi=80)
        for c in range(num_classes):
            ax = fig.add_subplot(rows, cols, c + 1)
            ax.stairs(counts[c], np.append(BIN_EDGES, 1.01), fill=True)
            ax.axvline(thresholds[c], color="red", linewidth=1)
            ax.set_title(f"{names[c]}: {int(counts[c].sum())} images", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.subplots_adjust(hspace=0.6, wspace=0.35, top=1 - 0.75 / (2.2 * rows + 0.4))
    else:
        fig = new_figure(8, max(6, 0.12 * min(num_classes, max_named_rows)), dpi=80)
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(np.log1p(counts), aspect="auto", origin="lower",
                          extent=(0, 1.01, -0.5, num_classes - 0.5), interpolation="nearest")
        ax.plot(thresholds, np.arange(num_classes), "r.", markersize=2)
        ax.set_xlabel("teacher confidence")
        if num_classes <= max_named_rows:
            ax.set_yticks(np.arange(num_classes), names, fontsize=5)
        else:
            ax.set_ylabel("class index")
        fig.colorbar(image, ax=ax, label="log(1 + images)")
    fig.suptitle("Teacher confidence per class (red: threshold)", fontsize=9)
    return fig


class _ShardWriters:
    """Deals records round-robin over the output shards, each written to a temp name first."""

    def __init__(self, output_dir: str, num_shards: int):
        self.names = [shard_name(OUTPUT_SPLIT, i, num_shards) for i in range(num_shards)]
        self.paths = [os.path.join(output_dir, name) for name in self.names]
        self.temps = [temp_path(path) for path in self.paths]
        self.writers = [tf.io.TFRecordWriter(tmp) for tmp in self.temps]
        self.next = 0

    def write_all(self, serialized: list[bytes]) -> None:
        for record in serialized:
            self.writers[self.next].write(record)
            self.next = (self.next + 1) % len(self.writers)

    def commit(self) -> None:
        for writer in self.writers:
            writer.close()
        for tmp, path in zip(self.temps, self.paths, strict=True):
            move_into_place(tmp, path)

    def abort(self) -> None:
        for writer, tmp in zip(self.writers, self.temps, strict=True):
            writer.close()
            discard(tmp)


def filter_and_balance(pseudo_pattern: str, output_dir: str, *, num_classes: int,
                       num_image_per_class: int, min_threshold: float = 0.3,
                       max_prob: float = 2.0, upsample: bool = True, use_all: bool = False,
                       seed: int = 0, num_output_shards: int | None = None,
                       shuffle: bool = True, chunk_size: int = 10000,
                       class_names: Sequence[str] | None = None,
                       strict: bool = False) -> dict:
    """Filters and balances pseudo-labeled TFRecords into the student's training records.

    Pass 1 counts images per class and confidence bin; pass 2 writes each kept record (bytes
    unchanged, so image and probability storage stay as labeled) its number of copies, shuffled
    in chunks of `chunk_size` records and dealt round-robin over `num_output_shards` files
    `train-%05d-of-%05d` (default: one per input file). Writes `stats.json` (counts, thresholds,
    totals, kept and written counts; written last, it marks the run complete) and a confidence
    histogram PNG (classes titled with ``class_names``, else their indices). A rerun with the
    same inputs and settings returns the saved stats. A damaged input file is read up to the
    damage and listed in `damaged_files` (name -> bytes unread); `strict=True` raises ValueError
    naming it instead.
    """
    files = _input_files(pseudo_pattern)
    num_output_shards = num_output_shards or len(files)
    settings = {"num_classes": num_classes, "num_image_per_class": num_image_per_class,
                "min_threshold": min_threshold, "max_prob": max_prob, "upsample": upsample,
                "use_all": use_all, "seed": seed, "num_output_shards": num_output_shards,
                "shuffle": shuffle, "chunk_size": chunk_size, "inputs": _file_signature(files)}
    stats_path = os.path.join(output_dir, STATS_NAME)
    previous = read_json(stats_path)
    if _stats_complete(output_dir, previous):
        if previous["settings"] == settings:
            log.info("filter_and_balance: %s is complete, skipping", output_dir)
            return previous
        raise ValueError(f"{output_dir} already holds filtered data made from other inputs or "
                         f"settings; choose a new output_dir or delete that one")
    tf.io.gfile.makedirs(output_dir)
    check_no_stale_shards(output_dir, OUTPUT_SPLIT, num_output_shards)

    remove_stale_temps(output_dir, recursive=False)
    scans = [scan_file(path, strict=strict) for path in files]
    counts = np.zeros((num_classes, NUM_BINS), dtype=np.int64)
    for path in files:
        for labels, probs in _read_batches(path, num_classes, with_records=False):
            _checked(path, labels, probs, num_classes)
            counts += bin_counts(labels, probs, num_classes)
    thresholds, totals = class_thresholds(counts, num_image_per_class,
                                          min_threshold=min_threshold, max_prob=max_prob,
                                          use_all=use_all)

    seeds = np.random.SeedSequence(seed).spawn(2)
    copy_rng, shuffle_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    kept = np.zeros(num_classes, dtype=np.int64)
    written = np.zeros(num_classes, dtype=np.int64)
    writers = _ShardWriters(output_dir, num_output_shards)
    pending: list[bytes] = []

    def flush() -> None:
        if shuffle:
            order = shuffle_rng.permutation(len(pending))
            writers.write_all([pending[i] for i in order])
        else:
            writers.write_all(pending)
        pending.clear()

    try:
        for path in files:
            for serialized, labels, probs in _read_batches(path, num_classes, with_records=True):
                copies = copies_per_image(labels, probs, thresholds, totals, num_image_per_class,
                                          copy_rng.random(len(labels)), max_prob=max_prob,
                                          upsample=upsample, use_all=use_all)
                np.add.at(kept, labels, (copies > 0).astype(np.int64))
                np.add.at(written, labels, copies)
                for record, n in zip(serialized, copies, strict=True):
                    pending.extend([record] * int(n))
                if len(pending) >= chunk_size:
                    flush()
        flush()
        writers.commit()
    except BaseException:
        writers.abort()
        raise

    write_png(histogram_figure(counts, thresholds, class_names),
              os.path.join(output_dir, HISTOGRAM_NAME), tight=False)
    stats = {
        "settings": settings,
        "bin_edges": BIN_EDGES.tolist(),
        "counts": counts.tolist(),
        "thresholds": thresholds.tolist(),
        "totals": totals.tolist(),
        "copy_rates": copy_rates(totals, num_image_per_class, upsample=upsample,
                                 use_all=use_all).tolist(),
        "num_input_records": int(counts.sum()),
        "kept_per_class": kept.tolist(),
        "written_per_class": written.tolist(),
        "num_kept": int(kept.sum()),
        "num_written": int(written.sum()),
        "output_files": writers.names,
        "histogram": HISTOGRAM_NAME,
        "damaged_files": {os.path.basename(scan.path): scan.size - scan.bytes_read
                          for scan in scans if scan.damaged},
    }
    write_json_atomic(stats_path, stats)
    log.info("filter_and_balance: %d of %d images kept, %d records written to %s",
             stats["num_kept"], stats["num_input_records"], stats["num_written"], output_dir)
    return stats
