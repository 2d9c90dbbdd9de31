"""Checkpoints of a training run (model, optimizer, EMA shadows, step), EMA-model loading and
atomic model export."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable

import keras
import tensorflow as tf

from noisy_student.atomic_io import atomic_output, read_json, write_json_atomic
from noisy_student.training.ema import ExponentialMovingAverage
from noisy_student.training.strategy import is_chief, worker_id

CHECKPOINT_PREFIX = "ckpt"
TRAIN_TIME_FILE = "train_time.json"  # TrainingClock's record, beside the checkpoints
MODEL_SUFFIXES = (".keras", ".weights.h5")
# What a save killed midway leaves in a model directory: TensorFlow writes a checkpoint's shards
# into "<prefix>-<N>_temp/" and merges them under "<prefix>-<N>" at the end, and writes the
# "checkpoint" state file through "checkpoint.tmp<32 hex digits>".
INTERRUPTED_SAVE = re.compile(
    rf"^(?:{re.escape(CHECKPOINT_PREFIX)}-\d+_temp|checkpoint\.tmp[0-9a-f]{{32}})$")

log = logging.getLogger(__name__)


class TrainingClock:
    """Training seconds summed over the sittings of a resumed training. Each checkpoint save
    records (step, seconds so far) beside the checkpoints; a training resumed from that step
    goes on from there. None when an earlier sitting's time is unknown (no record, or a record
    of another step: that sitting was killed between its checkpoint and the record)."""

    def __init__(self, model_dir: str, start_step: int, chief: bool = True):
        self.path = os.path.join(model_dir, TRAIN_TIME_FILE)
        self.chief = chief
        self.start = time.monotonic()
        self.earlier = 0.0 if start_step == 0 else self._recorded_at(start_step)

    def _recorded_at(self, step: int) -> float | None:
        try:
            record = read_json(self.path)
        except ValueError:
            return None
        if isinstance(record, dict) and record.get("step") == step:
            seconds = record.get("seconds")
            return float(seconds) if isinstance(seconds, (int, float)) else None
        return None

    def seconds(self) -> float | None:
        """Seconds of training up to now, over every sitting."""
        return None if self.earlier is None else self.earlier + time.monotonic() - self.start

    def record(self, step: int) -> None:
        """Called right after the checkpoint of `step` is saved (the chief writes)."""
        if self.chief:
            seconds = self.seconds()
            write_json_atomic(self.path, {
                "step": step, "seconds": None if seconds is None else round(seconds, 1)})


class Checkpointer:
    """Saves every N steps with tf.train.CheckpointManager (keeping the last `keep`) and
    restores the latest. Under multi-worker training every worker saves (variables may need
    collective reads), but only the chief writes into model_dir; the others write a scratch
    copy that is deleted at once."""

    def __init__(
        self,
        model_dir: str,
        strategy: tf.distribute.Strategy,
        keep: int = 5,
        **objects,
    ):
        self.model_dir = model_dir
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.chief = is_chief(strategy)
        self._scratch = os.path.join(model_dir, f".worker_scratch_{worker_id(strategy)}")
        self.manager = (
            tf.train.CheckpointManager(
                self.checkpoint, model_dir, max_to_keep=keep, checkpoint_name=CHECKPOINT_PREFIX
            )
            if self.chief
            else None
        )

    def remove_interrupted_saves(self) -> list[str]:
        """Deletes what killed saves left in model_dir (TensorFlow's ``ckpt-<N>_temp/`` shard
        folders and ``checkpoint.tmp<hex>`` files) and logs one line naming them; returns their
        paths. The chief does this when training starts or resumes.

        Only the chief of a training writes checkpoints into model_dir, and the run directory's
        lock (noisy_student.run.lock) admits one command per worker role, so anything of that
        kind found then belongs to a writer that is no longer running. (Two trainings must never
        share a model_dir: both would write its checkpoints.) Local paths only. A non-chief
        worker's scratch folder needs nothing: its next save replaces and deletes it."""
        if not self.chief or "://" in self.model_dir or not os.path.isdir(self.model_dir):
            return []
        names = sorted(n for n in os.listdir(self.model_dir) if INTERRUPTED_SAVE.match(n))
        removed = [os.path.join(self.model_dir, name) for name in names]
        for path in removed:
            tf.io.gfile.rmtree(path) if os.path.isdir(path) else os.remove(path)
        if removed:
            log.warning("Removed what interrupted checkpoint saves left in %s: %s",
                        self.model_dir, ", ".join(names))
        return removed

    def restore_latest(self) -> str | None:
        """Restores the newest readable checkpoint in model_dir, if any; returns its path (see
        `restore_newest_readable` for damaged ones). What killed saves left there is removed
        first (`remove_interrupted_saves`)."""
        self.remove_interrupted_saves()
        restored = restore_newest_readable(self.checkpoint, self.model_dir)
        if restored is None:
            return None
        path, status = restored
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise ValueError(
                f"Checkpoint {path} does not match this model/optimizer/precision ({error}). "
                "Resume with the same configuration, or use a new model_dir."
            ) from None
        return path

    def save(self, step: int) -> str:
        if self.chief:
            return self.manager.save(checkpoint_number=step)
        path = self.checkpoint.write(os.path.join(self._scratch, CHECKPOINT_PREFIX))
        tf.io.gfile.rmtree(self._scratch)
        return path

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.model_dir)


def restore_newest_readable(checkpoint: tf.train.Checkpoint, model_dir: str
                            ) -> tuple[str, tf.train.CheckpointLoadStatus] | None:
    """Restores the newest checkpoint of ``model_dir`` that can be read and returns (its path,
    the restore status), or None when there is no checkpoint. Every tensor of a checkpoint is
    read once before it is restored (a few seconds for B0, a minute for L2): one that cannot
    be read (a truncated or corrupt file: disk damage, a partial copy) is skipped with a
    warning naming its files, the checkpoint used instead and the training steps that are
    redone; when none can be read, ValueError names them all and the fix."""
    state = tf.train.get_checkpoint_state(model_dir)
    paths = list(reversed(state.all_model_checkpoint_paths)) if state else []
    if state and state.model_checkpoint_path not in paths:
        paths.insert(0, state.model_checkpoint_path)
    unreadable = []
    for path in paths:
        problem = _read_problem(path)
        if problem:
            files = ", ".join(sorted(os.path.basename(f) for f in tf.io.gfile.glob(path + ".*")))
            unreadable.append(f"{path} ({files or 'no files'}: {problem})")
            continue
        if unreadable:
            redone = _step_of(paths[0]) - _step_of(path)
            log.warning("Cannot read checkpoint %s; resuming from %s instead (%s training steps "
                        "are redone).", "; ".join(unreadable), path,
                        redone if redone >= 0 else "some")
        return path, checkpoint.restore(path)
    if not unreadable:
        return None
    raise ValueError(
        f"No checkpoint in {model_dir} can be read: {'; '.join(unreadable)}. Restore these "
        "files from a copy, or delete them (and the 'checkpoint' file) to start this training "
        "from step 0.")


def _read_problem(path: str) -> str | None:
    """Why the checkpoint ``path`` cannot be read (every tensor is read and checksummed), or
    None when it can."""
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (IndexError, ValueError, tf.errors.OpError) as error:  # what a damaged bundle raises
        return " ".join(str(error).split()) or type(error).__name__
    return None


def _step_of(path: str) -> int:
    """The step in a checkpoint's name (``ckpt-<step>``; -1 without one)."""
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else -1


def saved_classes(path: str) -> int | None:
    """The class count of the model saved at ``path`` (a ``.keras`` file, a ``.weights.h5``
    file or a TensorFlow checkpoint prefix), read without loading it: the units of its Dense
    layers, or the last dimension of its 2-D arrays (an EfficientNet's only 2-D weight is its
    classifier kernel; optimizer and EMA copies share its shape). None when they disagree or
    there are none."""
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        found = set(_dense_units(config))
    elif path.endswith(".h5"):
        import h5py

        found = set()
        with h5py.File(path, "r") as file:
            file.visititems(lambda _, item: found.add(item.shape[-1]) if isinstance(
                item, h5py.Dataset) and item.ndim == 2 else None)
    else:
        try:
            variables = tf.train.list_variables(path)
        except tf.errors.OpError:  # a damaged index: restoring reports it
            return None
        found = {shape[-1] for _, shape in variables if len(shape) == 2}
    return found.pop() if len(found) == 1 else None


def _dense_units(config):
    """The ``units`` of every Dense layer in a Keras config (nested dicts and lists)."""
    if isinstance(config, dict):
        if config.get("class_name") == "Dense":
            yield config["config"]["units"]
        for value in config.values():
            yield from _dense_units(value)
    elif isinstance(config, list):
        for value in config:
            yield from _dense_units(value)


def check_classes(path: str, num_classes: int) -> None:
    """Raises ValueError, before anything is loaded, when the model saved at ``path`` has
    another number of classes than ``num_classes`` (the --num_classes flag): one line with both
    numbers instead of Keras's shape error with the weight matrix in it."""
    found = saved_classes(path)
    if found is not None and found != num_classes:
        raise ValueError(f"{path} holds a model with {found} classes, --num_classes says "
                         f"{num_classes}: pass --num_classes={found}, or a {num_classes}-class "
                         "model.")


def load_ema_model(
    model_dir: str,
    model_fn: Callable[[], keras.Model],
    strategy: tf.distribute.Strategy | None = None,
) -> keras.Model:
    """Builds `model_fn()` and loads the EMA weights (and EMA batch-norm statistics) of the
    newest readable checkpoint in model_dir (`restore_newest_readable`). The builder may differ
    from training in ways that do not change the weights, e.g. classifier_activation='softmax'
    for labeling."""
    path = tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise FileNotFoundError(
            f"No checkpoint in {model_dir!r}; train there first or pass the run's model_dir."
        )
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = model_fn()
        ema = ExponentialMovingAverage(model)
    check_classes(path, model.output_shape[-1])
    path, status = restore_newest_readable(
        tf.train.Checkpoint(model=model, ema=ema.checkpointable), model_dir)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {path} does not match the model built by model_fn ({error}); build the "
            "same architecture (variant, classes, small_images) as in training."
        ) from None
    status.expect_partial()
    ema.copy_to_model()
    return model


def save_model(model: keras.Model, path: str) -> str:
    """Saves a whole model (`.keras`) or its weights (`.weights.h5`) under a temporary name in
    the same folder, then renames it, so `path` is either complete or absent."""
    suffix = next((s for s in MODEL_SUFFIXES if path.endswith(s)), None)
    if suffix is None:
        raise ValueError(
            f"Cannot save {path!r}: the file name must end with one of {MODEL_SUFFIXES}."
        )
    folder = os.path.dirname(path) or "."
    tf.io.gfile.makedirs(folder)
    with atomic_output(path, suffix) as temporary:
        if suffix == ".keras":
            model.save(temporary)
        else:
            model.save_weights(temporary)
    return path
