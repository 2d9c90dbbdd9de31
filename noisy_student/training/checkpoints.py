"""Checkpoints of a training run (model, optimizer, EMA shadows, step), EMA-model loading and
atomic model export."""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import tensorflow as tf

from noisy_student.atomic_io import atomic_output
from noisy_student.training.ema import ExponentialMovingAverage
from noisy_student.training.strategy import is_chief, worker_id

CHECKPOINT_PREFIX = "ckpt"
MODEL_SUFFIXES = (".keras", ".weights.h5")


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

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint in model_dir, if any; returns its path."""
        path = tf.train.latest_checkpoint(self.model_dir)
        if path is None:
            return None
        status = self.checkpoint.restore(path)
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


def load_ema_model(
    model_dir: str,
    model_fn: Callable[[], keras.Model],
    strategy: tf.distribute.Strategy | None = None,
) -> keras.Model:
    """Builds `model_fn()` and loads the EMA weights (and EMA batch-norm statistics) of the
    latest checkpoint in model_dir. The builder may differ from training in ways that do not
    change the weights, e.g. classifier_activation='softmax' for labeling."""
    path = tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise FileNotFoundError(
            f"No checkpoint in {model_dir!r}; train there first or pass the run's model_dir."
        )
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = model_fn()
        ema = ExponentialMovingAverage(model)
    status = tf.train.Checkpoint(model=model, ema=ema.checkpointable).restore(path)
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
