"""Filter and balance pseudo-labeled data (the rule of `noisy_student.pseudo_labels.balance`),
spread over every worker in one pass over the records.

1. Plan (the chief): sums the class x confidence counts that labeling stored in each shard's
   info file (reading only the shards that have none), sets the per-class thresholds and
   totals, and writes them to ``plan.json``.
2. Share (every worker): filters the shards it owns (shard i goes to worker i % N), one pass
   over their records each (`noisy_student.pseudo_labels.filter_shards`); a shard's output files
   and its counts (``parts/<shard>.json``, written last) are complete or absent, so a killed
   worker's rerun redoes only its unfinished shards, with the same draws.
3. Merge (the chief): once every shard has its part, sums them into ``stats.json`` (written
   last, it marks the output complete) and draws the confidence histogram.

The kept images and their copies do not depend on the number of workers: they are those of
one process reading every shard in order with the same seed.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import read_json, remove_stale_temps, write_json_atomic
from noisy_student.data.reference_records import is_reference
from noisy_student.data.shards import check_no_stale_shards, shard_name
from noisy_student.plots import class_labels, new_figure, write_png
from noisy_student.pseudo_labels.balance import (  # noqa: F401  (the rule's names, re-exported)
    BIN_EDGES,
    NUM_BINS,
    bin_counts,
    class_thresholds,
    confidence_bins,
    copies_per_image,
    copy_rates,
    dense_counts,
    sparse_cells,
)
from noisy_student.pseudo_labels.filter_shards import filter_shard, read_counts
from noisy_student.pseudo_labels.labeling import label_info_path
from noisy_student.run.workers import shards_for_worker, wait_for, worker_info

STATS_NAME = "stats.json"
PLAN_NAME = "plan.json"
PARTS_DIR = "parts"
HISTOGRAM_NAME = "confidence_histogram.png"
OUTPUT_SPLIT = "train"

READ_THREADS = 16  # per-file reads (stat, small JSON) at once: latency-bound on GCS

log = logging.getLogger(__name__)


def _per_file(function, items: list) -> Iterator:
    """function(item) for each item, in order, READ_THREADS at a time: the chief reads a stat
    or a small JSON of every input file, and at 10^4..10^5 files a network file system's
    latency per read, not the CPU, would set its time. Results are made a chunk at a time, so
    memory does not grow with the number of files."""
    if len(items) <= 1:
        yield from map(function, items)
        return
    chunk = 8 * READ_THREADS
    with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as pool:
        for start in range(0, len(items), chunk):
            yield from pool.map(function, items[start:start + chunk])


def _input_files(pattern: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no pseudo-labeled files match {pattern!r}; run labeling first "
                                f"or fix the pattern")
    return files


def _file_signature(files: list[str]) -> list[list]:
    return list(_per_file(lambda f: [os.path.basename(f), tf.io.gfile.stat(f).length], files))


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


# ----------------------------------------------------------------------------- plan


def _stored_counts(path: str, info: dict | None,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The counts labeling stored for `path` as (flat cell indices, counts) of its non-zero
    cells, or None when it stored none or the file is not the one it wrote (its size differs:
    truncated or replaced). Sparse: the chief adds 10^4..10^5 of them, and a dense
    [classes x bins] array per shard cost more than reading its JSON."""
    if not info or "confidence_counts" not in info:
        return None
    if info.get("output_bytes") != tf.io.gfile.stat(path).length:
        log.warning("%s differs in size from what labeling wrote; reading its records", path)
        return None
    sparse = info["confidence_counts"]
    if sparse is None:  # a shard without images
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if sparse["num_classes"] != num_classes:
        raise ValueError(f"{path} was labeled over {sparse['num_classes']} classes; pass the "
                         f"num_classes the teacher was labeled with ({num_classes} given)")
    try:
        return sparse_cells(sparse)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _shard_source(path: str, info: dict | None) -> tuple[bool, list | None]:
    """(reference records?, [source basename, source bytes] of a reference shard)."""
    if info and "settings" in info:
        reference = info["settings"].get("storage") == "reference"
        return reference, [info["input"], info.get("input_bytes")] if reference else None
    first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
    if first is None or not is_reference(first.numpy()):
        return False, None
    source = tf.train.Example.FromString(first.numpy()).features.feature["source"]
    return True, [source.bytes_list.value[0].decode(), None]


def plan_filter(files: list[str], output_dir: str, settings: dict, *, strict: bool) -> dict:
    """Sums the shards' class x confidence counts (stored by labeling; read for shards without
    them), sets thresholds and totals and writes ``plan.json``; returns the plan."""
    num_classes = settings["num_classes"]
    flat = np.zeros(num_classes * NUM_BINS, dtype=np.int64)
    first_records, read, sources, kinds, total = [], [], [], set(), 0

    def stored(path):
        info = read_json(label_info_path(path))
        return info, _stored_counts(path, info, num_classes)

    for path, (info, shard_counts) in zip(files, _per_file(stored, files), strict=True):
        if shard_counts is None:
            dense, _ = read_counts(path, num_classes, strict=strict)
            cells = np.flatnonzero(dense)
            shard_counts = cells, dense.reshape(-1)[cells]
            read.append(os.path.basename(path))
        cells, values = shard_counts
        first_records.append(total)
        flat[cells] += values  # a shard's cells are distinct
        total += int(values.sum())
        reference, source = _shard_source(path, info)
        kinds.add(reference)
        sources.append(source)
    counts = flat.reshape(num_classes, NUM_BINS)
    if len(kinds) > 1:
        raise ValueError(f"{os.path.dirname(files[0])} mixes reference and copy pseudo-label "
                         "shards; relabel them with one --pseudo_label_storage")
    per_class = settings["num_image_per_class"] or max(1, math.ceil(counts.sum() / num_classes))
    thresholds, totals = class_thresholds(counts, per_class,
                                          min_threshold=settings["min_threshold"],
                                          max_prob=settings["max_prob"],
                                          use_all=settings["use_all"])
    reference = kinds == {True}
    pieces = 1 if reference else math.ceil(settings["num_output_shards"] / len(files))
    check_no_stale_shards(output_dir, OUTPUT_SPLIT, len(files) * pieces)
    plan = {"id": hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16],
            "settings": settings, "num_image_per_class": per_class, "counts": counts.tolist(),
            "thresholds": thresholds.tolist(), "totals": totals.tolist(),
            "first_records": first_records, "shards_read_for_counts": read,
            "reference": reference, "outputs_per_shard": pieces,
            "sources": sources if reference else None}
    write_json_atomic(os.path.join(output_dir, PLAN_NAME), plan, indent=None)  # read by programs
    return plan


def output_names(plan: dict, num_shards: int) -> list[list[str]]:
    """The output file names of each input shard: shard i writes files i*P .. i*P + P-1."""
    pieces = plan["outputs_per_shard"]
    total = num_shards * pieces
    return [[shard_name(OUTPUT_SPLIT, i * pieces + j, total) for j in range(pieces)]
            for i in range(num_shards)]


# ----------------------------------------------------------------------------- share


def _part_path(output_dir: str, path: str) -> str:
    return os.path.join(output_dir, PARTS_DIR, os.path.basename(path) + ".json")


def _part_done(output_dir: str, path: str, plan: dict) -> bool:
    return _is_current(read_json(_part_path(output_dir, path)), plan)


def _is_current(part: dict | None, plan: dict) -> bool:
    """Whether a shard's part exists and was filtered under `plan`."""
    return part is not None and part["plan_id"] == plan["id"]


def filter_share(files: list[str], output_dir: str, plan: dict, worker_index: int,
                 num_workers: int, *, strict: bool) -> list[str]:
    """Filters the shards this worker owns that are not done yet; returns their names."""
    remove_stale_temps(output_dir)
    tf.io.gfile.makedirs(os.path.join(output_dir, PARTS_DIR))
    names = output_names(plan, len(files))
    done = []
    for index, path in shards_for_worker(files, worker_index, num_workers):
        if _part_done(output_dir, path, plan):
            continue
        part = filter_shard(path, [os.path.join(output_dir, n) for n in names[index]],
                            shard=index, first_record=plan["first_records"][index], plan=plan,
                            strict=strict)
        write_json_atomic(_part_path(output_dir, path), {**part, "plan_id": plan["id"]},
                          indent=None)
        done.append(os.path.basename(path))
    return done


def unfinished_shards(files: list[str], output_dir: str, plan: dict,
                      known_done: set[str] | None = None) -> list[str]:
    """The input shards (of every worker) whose filtered output is not complete yet: one
    listing of the parts, then a read of each listed part not in `known_done` (a set the
    caller keeps between polls, so that each part is read once while the chief waits)."""
    known_done = set() if known_done is None else known_done
    listed = {os.path.basename(p) for p in tf.io.gfile.glob(
        os.path.join(output_dir, PARTS_DIR, "*.json"))}
    check = [p for p in files if os.path.basename(p) not in known_done
             and os.path.basename(_part_path(output_dir, p)) in listed]
    for path, done in zip(check, _per_file(lambda p: _part_done(output_dir, p, plan), check),
                          strict=True):
        if done:
            known_done.add(os.path.basename(path))
    return [os.path.basename(p) for p in files if os.path.basename(p) not in known_done]


# ----------------------------------------------------------------------------- merge


def merge_filter(files: list[str], output_dir: str, plan: dict,
                 class_names: Sequence[str] | None = None) -> dict:
    """Sums every shard's part into ``stats.json`` (written last) and draws the histogram."""
    settings = plan["settings"]
    counts, totals = np.asarray(plan["counts"]), np.asarray(plan["totals"])
    thresholds = np.asarray(plan["thresholds"])
    kept = np.zeros(len(counts), dtype=np.int64)
    written = np.zeros_like(kept)
    num_input_records, damaged, missing = 0, {}, []
    parts = _per_file(lambda path: read_json(_part_path(output_dir, path)), files)
    for path, part in zip(files, parts, strict=True):  # one read of each part, streamed
        if not _is_current(part, plan):
            missing.append(os.path.basename(path))
            continue
        kept += part["kept_per_class"]
        written += part["written_per_class"]
        num_input_records += part["num_records"]
        if part["bytes_unread"]:
            damaged[part["input"]] = part["bytes_unread"]
    if missing:
        raise RuntimeError(f"{output_dir}: shards {missing[:5]} are not filtered yet; run "
                           f"every worker (rerun to resume)")
    names = output_names(plan, len(files))
    write_png(histogram_figure(counts, thresholds, class_names),
              os.path.join(output_dir, HISTOGRAM_NAME), tight=False)
    stats = {
        "settings": settings,
        "num_image_per_class": plan["num_image_per_class"],
        "bin_edges": BIN_EDGES.tolist(),
        "counts": counts.tolist(),
        "thresholds": thresholds.tolist(),
        "totals": totals.tolist(),
        "copy_rates": copy_rates(totals, plan["num_image_per_class"],
                                 upsample=settings["upsample"],
                                 use_all=settings["use_all"]).tolist(),
        "num_input_records": num_input_records,
        "kept_per_class": kept.tolist(),
        "written_per_class": written.tolist(),
        "num_kept": int(kept.sum()),
        "num_written": int(written.sum()),
        "output_files": [name for shard in names for name in shard],
        "reference": plan["reference"],
        "histogram": HISTOGRAM_NAME,
        "passes_over_records": 1 + len(plan["shards_read_for_counts"]) / len(files),
        "damaged_files": damaged,
    }
    if plan["reference"]:
        stats["output_sources"] = {shard[0]: source
                                   for shard, source in zip(names, plan["sources"], strict=True)}
    write_json_atomic(os.path.join(output_dir, STATS_NAME), stats)
    log.info("filter_and_balance: %d of %d images kept, %d records written to %s",
             stats["num_kept"], stats["num_input_records"], stats["num_written"], output_dir)
    return stats


# ----------------------------------------------------------------------------- the stage


def _plan_for(output_dir: str, settings: dict) -> dict | None:
    plan = read_json(os.path.join(output_dir, PLAN_NAME))
    return plan if plan is not None and plan["settings"] == settings else None


def filter_and_balance(pseudo_pattern: str, output_dir: str, *, num_classes: int,
                       num_image_per_class: int | None = None, min_threshold: float = 0.3,
                       max_prob: float = 2.0, upsample: bool = True, use_all: bool = False,
                       seed: int = 0, num_output_shards: int | None = None,
                       shuffle: bool = True, chunk_size: int = 10000,
                       class_names: Sequence[str] | None = None, strict: bool = False,
                       worker_index: int | None = None, num_workers: int | None = None,
                       wait_timeout: float = 6 * 3600.0, poll_seconds: float = 10.0) -> dict:
    """Filters and balances pseudo-labeled TFRecords into the student's training records; this
    worker's share (`worker_index`/`num_workers`, default TF_CONFIG or the only worker).

    Copy records (image inside) are written unchanged, each as many times as its copies,
    shuffled in chunks of `chunk_size` records and dealt at random over its shard's output
    files `train-%05d-of-%05d`: `num_output_shards` in all (default: 4 per worker, at least
    one per input file), rounded up to a multiple of the input files. Reference records are
    written once per kept image, in source order, one output file per input file, with their
    copies inside. `num_image_per_class` defaults to the input records / num_classes. Returns
    the merged statistics (counts, thresholds, totals, kept and written per class; see
    `merge_filter`), the same on every worker; a rerun with the same inputs and settings
    returns the saved ones. A damaged input file is read up to the damage and listed in
    `damaged_files` (name -> bytes unread); `strict=True` raises ValueError naming it.
    Workers wait for each other up to `wait_timeout` s, asking every `poll_seconds` s.
    """
    files = _input_files(pseudo_pattern)
    worker = worker_info(worker_index, num_workers)
    stats_path = os.path.join(output_dir, STATS_NAME)
    previous = read_json(stats_path) or read_json(os.path.join(output_dir, PLAN_NAME))
    inputs = _file_signature(files)
    if num_output_shards is None:  # keep what a run of other worker count chose
        same = previous is not None and previous["settings"]["inputs"] == inputs
        num_output_shards = (previous["settings"]["num_output_shards"] if same
                             else max(len(files), 4 * worker.count))
    settings = {"num_classes": num_classes, "num_image_per_class": num_image_per_class,
                "min_threshold": min_threshold, "max_prob": max_prob, "upsample": upsample,
                "use_all": use_all, "seed": seed, "num_output_shards": num_output_shards,
                "shuffle": shuffle, "chunk_size": chunk_size, "inputs": inputs}
    stats = read_json(stats_path)
    if _stats_complete(output_dir, stats):
        if stats["settings"] == settings:
            log.info("filter_and_balance: %s is complete, skipping", output_dir)
            return stats
        raise ValueError(f"{output_dir} already holds filtered data made from other inputs or "
                         f"settings; choose a new output_dir or delete that one")
    tf.io.gfile.makedirs(output_dir)
    chief = worker.index == 0
    plan = _plan_for(output_dir, settings)
    if plan is None and chief:
        plan = plan_filter(files, output_dir, settings, strict=strict)
    elif plan is None:
        wait_for("the chief's filter plan", lambda: _plan_for(output_dir, settings) is not None,
                 wait_timeout, poll_seconds)
        plan = _plan_for(output_dir, settings)
    filter_share(files, output_dir, plan, worker.index, worker.count, strict=strict)
    if chief:
        done: set[str] = set()
        wait_for("the other workers' filtered shards",
                 lambda: not unfinished_shards(files, output_dir, plan, done), wait_timeout,
                 poll_seconds)
        return merge_filter(files, output_dir, plan, class_names)
    wait_for("the chief's filter statistics", lambda: is_complete(output_dir), wait_timeout,
             poll_seconds)
    return read_json(stats_path)
