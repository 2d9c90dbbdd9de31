"""Counted skipping of bad data: undecodable images and damaged TFRecord files.

By default a bad item is skipped, counted in a :class:`DataStats` and logged (absl WARNING);
with ``strict=True`` the pipeline raises an error naming the file and the record instead.

Images: a chunk of elements is preprocessed inside a one-element dataset with
``ignore_errors``; a placeholder flagged "bad" follows it, and ``take(1)`` keeps whichever
comes first. A chunk that fails is redone one element at a time the same way, so a decode
failure becomes a per-record flag that can be counted or turned into an error with the file
name, all in graph mode (works under ``tf.function`` and ``tf.distribute``), while good data
pays the isolation cost once per chunk instead of once per image.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
from absl import logging

# Safety net for non-strict mode: a pipeline whose images almost all fail (wrong files, a bug in
# preprocessing) would otherwise spin forever skipping them.
MIN_BAD_FOR_ABORT = 100
MAX_BAD_FRACTION = 0.5
# Elements preprocessed together by `guarded_map` (one isolation dataset per chunk).
CHUNK = 32


class DataStats:
    """Counters of what the input pipelines read and skipped (tf.Variables, int64).

    Create it outside any ``strategy.scope()`` and pass it to the pipeline builders; read it
    with :meth:`result` after (or during) iteration. Counts include elements prefetched but
    not yet consumed, and a damaged file is counted once per epoch it is read in; its name and
    the bytes left unread are kept (:attr:`damaged`) and logged the first time only.
    """

    NAMES = ("images", "bad_images", "files", "damaged_files")

    def __init__(self) -> None:
        with tf.init_scope():
            self._counters = {
                name: tf.Variable(0, dtype=tf.int64, trainable=False, name=f"data_stats_{name}")
                for name in self.NAMES
            }
        self.damaged: dict[str, int] = {}  # damaged file -> bytes not read (this process)

    def note_damaged(self, filename: tf.Tensor, unread: tf.Tensor, message: tf.Tensor) -> None:
        """Records a damaged file (eager; called through tf.py_function)."""
        name = filename.numpy().decode("utf-8", "replace")
        if name not in self.damaged:
            _log_warning(message)
        self.damaged[name] = int(unread.numpy())

    def summary(self) -> dict:
        """What a stage reports: images read and skipped, damaged files (name -> bytes
        unread; the records in them after the damage are lost)."""
        counts = self.result()
        return {"data_images": counts["images"], "data_skipped": counts["bad_images"],
                "data_damaged_files": dict(sorted(self.damaged.items()))}

    def increment(self, name: str, amount: tf.Tensor | int = 1) -> tf.Operation:
        """Adds ``amount`` to counter ``name`` (graph-safe)."""
        return self._counters[name].assign_add(tf.cast(amount, tf.int64))

    def result(self) -> dict[str, int]:
        """Current counts as Python ints: images, bad_images, files, damaged_files."""
        return {name: int(var.numpy()) for name, var in self._counters.items()}

    def reset(self) -> None:
        for var in self._counters.values():
            var.assign(0)
        self.damaged.clear()

    def log(self) -> None:
        """Logs the counts (WARNING if anything was skipped, INFO otherwise)."""
        counts = self.result()
        log = logging.warning if counts["bad_images"] or counts["damaged_files"] else logging.info
        log("Input data: %d images (%d skipped as undecodable), %d files read (%d damaged)",
            counts["images"], counts["bad_images"], counts["files"], counts["damaged_files"])


def text(*parts) -> tf.Tensor:
    """A scalar string tensor joined from Python strings and scalar tensors (no quoting)."""
    return tf.strings.join([
        part if isinstance(part, str) or tf.as_dtype(part.dtype) == tf.string
        else tf.strings.as_string(part) for part in parts])


def _log_warning(message: tf.Tensor) -> None:
    logging.warning("%s", message.numpy().decode("utf-8", "replace"))


def report_bad(is_bad: tf.Tensor, message: tf.Tensor | Callable[[], tf.Tensor], *,
               strict: bool) -> tf.Operation:
    """When ``is_bad``: raises ``message`` (strict) or logs it as a Python absl warning (a
    py_function). A callable ``message`` is built only for bad items."""
    make = message if callable(message) else lambda: message
    if strict:
        return tf.cond(is_bad, lambda: _fail(make()), tf.no_op)
    return tf.cond(is_bad, lambda: tf.py_function(_log_warning, [make()], []), tf.no_op)


def _fail(message: tf.Tensor) -> tf.Operation:
    return tf.debugging.Assert(tf.constant(False), [message], summarize=1)


def _placeholder(spec: tf.TensorSpec) -> tf.Tensor:
    return tf.zeros([d if d is not None else 0 for d in spec.shape], spec.dtype)


def try_map(element, fn: Callable, *, log_warning: bool = True) -> tf.data.Dataset:
    """A one-element dataset: ``(fn(element), True)``, or ``(zeros, False)`` when ``fn`` fails
    on it (graph mode; also inside a tf.function or a SavedModel signature)."""
    good = (tf.data.Dataset.from_tensors(element)
            .map(lambda e: (fn(e), tf.constant(True)))
            .ignore_errors(log_warning=log_warning))
    placeholder = tf.nest.map_structure(_placeholder, good.element_spec[0])
    bad = tf.data.Dataset.from_tensors((placeholder, tf.constant(False)))
    return good.concatenate(bad).take(1)


def guarded_map(dataset: tf.data.Dataset, fn: Callable, *, stats: DataStats, strict: bool,
                deterministic: bool) -> tf.data.Dataset:
    """Maps ``fn`` over elements (dicts with "file" and "index" keys), skipping and counting
    elements on which it fails; with ``strict`` a failure raises an error naming the record.
    The output order is the input order."""
    output_spec = dataset.map(fn).element_spec

    def map_chunk(chunk):
        return tf.map_fn(fn, chunk, fn_output_signature=output_spec)

    def account(out, ok, filename, index):
        is_bad = tf.logical_not(ok)
        images = stats.increment("images")
        bad = stats.increment("bad_images", tf.cast(is_bad, tf.int64))
        reported = report_bad(is_bad, lambda: text(
            "Undecodable image: record ", index, " of ", filename,
            " (strict=True; pass strict=False to skip and count such records)" if strict
            else " was skipped"), strict=strict)
        too_many = tf.logical_and(bad >= MIN_BAD_FOR_ABORT,
                                  tf.cast(bad, tf.float64) > MAX_BAD_FRACTION * tf.cast(
                                      images, tf.float64))
        abort = tf.cond(too_many, lambda: _fail(text(
            bad, " of ", images, " images failed to decode or preprocess (last in ", filename,
            "); the files do not hold images of a supported format (JPEG/PNG/GIF/BMP) or the "
            "preprocessing is broken")), tf.no_op)
        with tf.control_dependencies([reported, abort]):
            return tf.nest.map_structure(tf.identity, out), tf.identity(ok)

    def one_by_one(element):
        return (try_map(element, fn)
                .map(lambda out, ok: account(out, ok, element["file"], element["index"]))
                .filter(lambda out, ok: ok)
                .map(lambda out, ok: out))

    def isolate_chunk(chunk):
        def expand(outputs, ok):
            def count_whole(_):
                with tf.control_dependencies([
                        stats.increment("images", tf.size(chunk["index"]))]):
                    return tf.data.Dataset.from_tensor_slices(outputs)

            whole = _when(ok).flat_map(count_whole)
            redone = _when(tf.logical_not(ok)).flat_map(
                lambda _: tf.data.Dataset.from_tensor_slices(chunk).flat_map(one_by_one))
            return whole.concatenate(redone)

        return try_map(chunk, map_chunk, log_warning=False).flat_map(expand)

    return dataset.batch(CHUNK).interleave(
        isolate_chunk, cycle_length=tf.data.AUTOTUNE, block_length=CHUNK,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _when(condition: tf.Tensor) -> tf.data.Dataset:
    """One element if ``condition`` holds, else none (gates a lazily built dataset)."""
    return tf.data.Dataset.from_tensors(condition).filter(lambda c: c)
