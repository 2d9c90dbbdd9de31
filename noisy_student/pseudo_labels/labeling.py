"""The teacher labels unlabeled TFRecord shards (offline pseudo labels).

Input shards (the sorted files matching a pattern) are split over workers: shard i goes to worker
i % N. Each input shard gives one output shard with the same index, `pseudo-%05d-of-%05d`, holding
for every decodable image, in input order, either a copy record (its encoded bytes, the teacher's
distribution, argmax label and top-1 probability: `records.encode_pseudo_labeled`) or, with
storage "reference", a reference record (input file, record index, top-K distribution:
`reference_records.encode_reference`). Records that cannot be parsed or decoded are skipped and
counted; their indices go to `info/pseudo-%05d-of-%05d.json`, which also holds the shard's class
x confidence counts (what filtering sums instead of reading the records) and is written after the
shard: it marks it complete, so a rerun skips finished shards and redoes the rest (each output is
renamed into place only when whole).

The teacher runs in inference mode on eval-preprocessed images (center crop at its resolution);
pass a model that holds the EMA weights. Keep soft labels (T=1, the reference setting) when the
data is to be filtered: hard labels store one-hot vectors, so every confidence becomes 1.0.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import logging
import os

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import read_json, write_json_atomic
from noisy_student.data.preprocessing import preprocess_for_eval
from noisy_student.data.records import (
    atomic_tfrecord_writer,
    encode_pseudo_labeled_batch,
    parse_unlabeled,
)
from noisy_student.data.reference_records import DEFAULT_TOP_K, encode_references
from noisy_student.data.shards import check_no_stale_shards, shard_name
from noisy_student.data.tfrecord_source import list_files, scan_file
from noisy_student.pseudo_labels.balance import bin_counts, sparse_counts
from noisy_student.run.workers import shards_for_worker, worker_info
from noisy_student.targets import inference_teacher, teacher_labels
from noisy_student.training.checks import model_outputs_logits

OUTPUT_SPLIT = "pseudo"
INFO_DIR = "info"
MAX_LISTED_SKIPS = 1000
# Teacher calls running at once. One call leaves a core idle part of the time where the model's
# layers are small; two overlap those gaps (benchmarks/labeling_throughput.py, B0 at 32 px on 2
# cores: 0.84x predict with one call, 1.33x and 1.38x with two); more would only hold more
# batches in memory.
TEACHER_CALLS_IN_FLIGHT = 2

log = logging.getLogger(__name__)


def pseudo_label_pattern(output_dir: str) -> str:
    """Glob matching the pseudo-labeled shards that `label_shards` writes (for filtering)."""
    return os.path.join(output_dir, "pseudo-?????-of-?????")


def label_info_path(shard_path: str) -> str:
    """The info file of a pseudo-labeled shard (`info/<name>.json` beside it)."""
    directory, name = os.path.split(shard_path)
    return os.path.join(directory, INFO_DIR, name + ".json")


def make_label_fn(teacher, *, temperature: float = 1.0, hard: bool = False,
                  from_logits: bool | None = None, flip_average: bool = False):
    """Compiled images -> pseudo-label distribution [B, C] (float32).

    Soft: softmax(logits / T); for a model that outputs probabilities p this is p^(1/T)
    renormalized. Hard: one-hot of the argmax. `flip_average`: the mean over each image and
    its horizontal mirror (`pseudo_labels.teacher_labels`). The teacher runs with its batch
    norms folded into its convolutions (`targets.inference_teacher`).
    """
    if not hard and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for soft labels, got {temperature}")
    if from_logits is None:
        from_logits = model_outputs_logits(teacher)
    teacher = inference_teacher(teacher)

    @tf.function(reduce_retracing=True)
    def label(images):
        return teacher_labels(teacher, images, temperature, hard, from_logits, flip_average)

    return label


@functools.lru_cache(maxsize=16)
def _prepare_fn(image_size: int, small_images: bool, crop_padding: int):
    """(record index, serialized record) -> (index, image bytes, preprocessed image), traced
    once per setting: mapping a plain Python function would convert and trace it again for
    every shard's dataset (~0.3 s CPU a shard: 7% of labeling 512-image shards at 32 px)."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string)])
    def prepare(index, serialized):
        image_bytes = parse_unlabeled(serialized)["image"]
        image = preprocess_for_eval(image_bytes, image_size, small_images=small_images,
                                    crop_padding=crop_padding)
        return index, image_bytes, image

    return prepare


def _decoded_batches(path: str, *, image_size: int, small_images: bool, crop_padding: int,
                     batch_size: int) -> tf.data.Dataset:
    """(record index, image bytes, preprocessed image) batches in file order; records that fail
    to parse or decode are dropped (the caller finds them from the missing indices)."""
    prepare = _prepare_fn(image_size, small_images, crop_padding)
    return (tf.data.TFRecordDataset(path).ignore_errors().enumerate()  # stops at any damage
            .map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .ignore_errors()
            .batch(batch_size)
            .prefetch(tf.data.AUTOTUNE))


def _remove_stale_temps(output_dir: str, name: str) -> None:
    """Deletes temp files a killed run left for this shard (each shard has one owner)."""
    for stale in tf.io.gfile.glob(os.path.join(output_dir, f".{name}.tmp-*")):
        tf.io.gfile.remove(stale)


def _encoder(storage: str, top_k: int, source: str):
    """(record indices, image bytes, [N, C] distributions) -> the batch's serialized records."""
    if storage == "reference":
        return lambda indices, _, probs: encode_references(source, indices, probs, top_k)
    return lambda _, images, probs: encode_pseudo_labeled_batch(list(images), probs, storage)


def _added(total: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
    return counts if total is None else total + counts


def _label_shard(label_fn, input_path: str, output_path: str, *, storage: str, top_k: int,
                 strict: bool, **pipeline) -> dict:
    """Labels one shard. The teacher runs on two batches at once (TensorFlow releases Python's
    lock while it computes), and batch i's records are encoded and written on another thread
    while the teacher runs on the next ones; records still come out in file order."""
    scan = scan_file(input_path, strict=strict)
    num_records = scan.num_records
    seen = []
    counts = None
    encode = _encoder(storage, top_k, os.path.basename(input_path))

    def teach(images) -> np.ndarray:
        return label_fn(images).numpy().astype(np.float32, copy=False)

    def write(writer, index_list, image_bytes, probabilities):
        for record in encode(index_list, image_bytes, probabilities):
            writer.write(record)
        # The label and confidence every record stores: argmax and its float32 value.
        labels = probabilities.argmax(axis=1)
        return bin_counts(labels, probabilities[np.arange(len(labels)), labels],
                          probabilities.shape[1])

    with atomic_tfrecord_writer(output_path) as writer, \
            concurrent.futures.ThreadPoolExecutor(
                TEACHER_CALLS_IN_FLIGHT, thread_name_prefix="label-teacher") as teachers, \
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="label-write") as pool:
        labeling = collections.deque()  # (indices, image bytes, future probabilities), in order
        pending = None  # the batch being written: at most one waits, so memory stays bounded

        def write_oldest() -> None:
            nonlocal counts, pending
            index_list, image_bytes, probabilities = labeling.popleft()
            probabilities = probabilities.result()
            if pending is not None:
                counts = _added(counts, pending.result())
            pending = pool.submit(write, writer, index_list, image_bytes, probabilities)

        for indices, image_bytes, images in _decoded_batches(input_path, **pipeline):
            index_list = indices.numpy().tolist()
            labeling.append((index_list,
                             image_bytes.numpy() if storage != "reference" else None,
                             teachers.submit(teach, images)))
            seen.extend(index_list)
            if len(labeling) == TEACHER_CALLS_IN_FLIGHT:
                write_oldest()
        while labeling:
            write_oldest()
        if pending is not None:
            counts = _added(counts, pending.result())
        if num_records and not seen:  # raised inside: the writer then discards its temp file
            raise ValueError(f"none of the {num_records} records of {input_path} could be parsed "
                             f"and decoded; check that it holds 'image/encoded' images")
        skipped = sorted(set(range(num_records)) - set(seen))
        if skipped and strict:
            raise ValueError(f"{input_path}: record {skipped[0]} cannot be parsed or decoded "
                             f"(strict data checking; {len(skipped)} such records)")
    if skipped:
        log.warning("%s: %d of %d records could not be parsed or decoded and were skipped",
                    input_path, len(skipped), num_records)
    return {"num_records": num_records, "num_labeled": len(seen),
            "num_undecodable": len(skipped), "undecodable_indices": skipped[:MAX_LISTED_SKIPS],
            "damaged": scan.damaged, "bytes_unread": scan.size - scan.bytes_read,
            "input_bytes": scan.size, "output_bytes": tf.io.gfile.stat(output_path).length,
            "confidence_counts": None if counts is None else sparse_counts(counts)}


def _finished_infos(input_pattern: str, output_dir: str) -> tuple[int, list[dict]]:
    """(number of input shards, the info of every finished output shard)."""
    files = list_files(input_pattern)
    infos = [read_json(os.path.join(output_dir, INFO_DIR,
                                    shard_name(OUTPUT_SPLIT, index, len(files)) + ".json"))
             for index in range(len(files))]
    return len(files), [info for info in infos if info is not None]


def label_totals(input_pattern: str, output_dir: str) -> dict:
    """Totals over every finished output shard, whichever worker or invocation wrote it:
    records read, images labeled, undecodable images skipped (`data_skipped`) and damaged input
    files with the bytes left unread (`data_damaged_files`)."""
    num_shards, infos = _finished_infos(input_pattern, output_dir)
    totals = {"num_shards": num_shards, "num_finished_shards": 0, "num_records": 0,
              "num_labeled": 0, "data_skipped": 0, "data_damaged_files": {}}
    for info in infos:
        totals["num_finished_shards"] += 1
        totals["num_records"] += info["num_records"]
        totals["num_labeled"] += info["num_labeled"]
        totals["data_skipped"] += info["num_undecodable"]
        if info.get("damaged"):
            totals["data_damaged_files"][info["input"]] = info["bytes_unread"]
    return totals


def nothing_labeled_message(input_pattern: str, output_dir: str, listed: int = 10) -> str:
    """Why no image was labeled: each unlabeled file (the first ``listed``) with what reading
    it found (readable records, undecodable images, bytes left unread after damage) and the
    fix. Labeling or filtering nothing would otherwise surface later as a confidence problem."""
    num_shards, infos = _finished_infos(input_pattern, output_dir)
    described = []
    for info in infos[:listed]:
        found = [f"{info['num_records']} readable records"]
        if info["num_undecodable"]:
            found.append(f"{info['num_undecodable']} undecodable images")
        if info.get("damaged"):
            found.append(f"damaged: {info['bytes_unread']} bytes unread")
        described.append(f"{info['input']} ({', '.join(found)})")
    more = f" and {len(infos) - listed} more" if len(infos) > listed else ""
    return (f"No unlabeled image could be read from the {num_shards} files of "
            f"{input_pattern!r}: {'; '.join(described)}{more}. Rewrite or replace these files "
            f"(TFRecords of 'image/encoded' images, e.g. from noisy-student-build-tfrecords), "
            f"then delete {output_dir} and rerun.")


def unfinished_shards(input_pattern: str, output_dir: str) -> list[str]:
    """Output shards (of every worker) that are not complete yet: the barrier a job waits on
    before filtering what several workers labeled."""
    files = list_files(input_pattern)
    names = [shard_name(OUTPUT_SPLIT, index, len(files)) for index in range(len(files))]
    return [
        name for name in names
        if not tf.io.gfile.exists(os.path.join(output_dir, INFO_DIR, name + ".json"))
    ]


def label_shards(teacher, input_pattern: str, output_dir: str, *, image_size: int,
                 small_images: bool = False, batch_size: int = 128, temperature: float = 1.0,
                 hard: bool = False, from_logits: bool | None = None,
                 worker_index: int | None = None, num_workers: int | None = None,
                 storage: str = "float32", crop_padding: int = 32,
                 label_fn=None, strict: bool = False, flip_average: bool = False,
                 top_k: int = DEFAULT_TOP_K) -> dict:
    """Labels this worker's share of the unlabeled shards; returns a summary dict.

    `worker_index`/`num_workers` default to TF_CONFIG (or a single worker). `from_logits=None`
    reads it from the teacher's last layer. `storage` is "reference" (records that point at
    their image and keep the `top_k` classes: `encode_reference`) or the probability storage
    of copy records (`encode_pseudo_labeled`: "float32", "float16" or "topk:K"). `label_fn` (from
    `make_label_fn`, built with the same teacher and settings) reuses an already traced function
    across calls; by default one is built per call. `flip_average` labels each image by the
    mean over it and its mirror. A damaged shard is labeled up to the
    damage and an undecodable image is skipped, both counted in the shard's info file;
    `strict=True` raises ValueError naming the file and record instead.
    """
    files = list_files(input_pattern)
    worker = worker_info(worker_index, num_workers)
    if label_fn is None:
        label_fn = make_label_fn(teacher, temperature=temperature, hard=hard,
                                 from_logits=from_logits, flip_average=flip_average)
    settings = {"image_size": image_size, "small_image": small_images, "crop_padding": crop_padding,
                "temperature": temperature, "hard": hard, "storage": storage}
    if flip_average:  # recorded only when set, so shards labeled before the option still match
        settings["flip_average"] = True
    if storage == "reference":
        settings["top_k"] = top_k
    tf.io.gfile.makedirs(os.path.join(output_dir, INFO_DIR))
    check_no_stale_shards(output_dir, OUTPUT_SPLIT, len(files))
    summary = {"worker_index": worker.index, "num_workers": worker.count, "labeled_shards": [],
               "skipped_complete_shards": [], "num_labeled": 0, "num_undecodable": 0}
    for index, input_path in shards_for_worker(files, worker.index, worker.count):
        name = shard_name(OUTPUT_SPLIT, index, len(files))
        output_path = os.path.join(output_dir, name)
        info_path = os.path.join(output_dir, INFO_DIR, name + ".json")
        info = read_json(info_path)
        if info is not None and tf.io.gfile.exists(output_path):
            if info["settings"] != settings or info["input"] != os.path.basename(input_path):
                raise ValueError(f"{output_path} was labeled from {info['input']} with settings "
                                 f"{info['settings']}; use a new output_dir or delete it")
            summary["skipped_complete_shards"].append(name)
            continue
        _remove_stale_temps(output_dir, name)
        log.info("labeling %s -> %s", input_path, output_path)
        info = _label_shard(label_fn, input_path, output_path, storage=storage, top_k=top_k,
                            strict=strict, image_size=image_size, small_images=small_images,
                            crop_padding=crop_padding, batch_size=batch_size)
        info.update(input=os.path.basename(input_path), settings=settings)
        write_json_atomic(info_path, info)
        summary["labeled_shards"].append(name)
        summary["num_labeled"] += info["num_labeled"]
        summary["num_undecodable"] += info["num_undecodable"]
    return summary
