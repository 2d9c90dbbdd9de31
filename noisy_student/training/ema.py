"""Exponential moving average of the model weights (TF1 `ExponentialMovingAverage` semantics).

shadow <- d * shadow + (1 - d) * w with d = min(decay, (1 + n) / (10 + n)), n = the number of
training steps done so far (counting the current one). It covers the trainable weights and the
batch-norm moving statistics, as the reference does; evaluation, labeling and export use the
shadows (`swapped()` / `copy_to_model()`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import keras
import tensorflow as tf


def ema_decay(decay: float, num_updates) -> tf.Tensor:
    """min(decay, (1 + n) / (10 + n)) as float32."""
    n = tf.cast(num_updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + n) / (10.0 + n))


def averaged_variables(model: keras.Model) -> list[keras.Variable]:
    """Trainable weights plus the floating-point non-trainable ones (batch-norm moving mean and
    variance); integer state such as random-seed counters is left out."""
    extra = [w for w in model.non_trainable_weights if tf.as_dtype(w.dtype).is_floating]
    return list(model.trainable_weights) + extra


class _ShadowStore(tf.Module):
    """What a checkpoint stores for the EMA: only the shadow variables, in a fixed order."""

    def __init__(self, shadows: Sequence[tf.Variable]):
        super().__init__(name="ema")
        self.shadows = list(shadows)


class ExponentialMovingAverage:
    """Shadow copies of a model's weights. Create it inside `strategy.scope()` after the model
    is built; put `checkpointable` in the tf.train.Checkpoint."""

    def __init__(self, model: keras.Model, decay: float = 0.9999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.model_variables = averaged_variables(model)
        shadows = [
            tf.Variable(
                tf.identity(_tf_variable(v)),
                trainable=False,
                name=f"ema_{index}",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            for index, v in enumerate(self.model_variables)
        ]
        self.checkpointable = _ShadowStore(shadows)

    @property
    def shadows(self) -> list[tf.Variable]:
        return self.checkpointable.shadows

    def update(self, num_updates) -> None:
        """One EMA step. Call it in the train step after the optimizer update, in replica or
        cross-replica context; `num_updates` is the step count including this step."""
        decay = ema_decay(self.decay, num_updates)
        replica_context = tf.distribute.get_replica_context()
        if replica_context is None:
            self._update(tf.distribute.get_strategy(), decay)
        else:
            replica_context.merge_call(self._update, args=(decay,))

    def _update(self, strategy: tf.distribute.Strategy, decay) -> None:
        def move(shadow, value, decay):
            return shadow.assign_sub((1.0 - decay) * (shadow - tf.cast(value, shadow.dtype)))

        for shadow, variable in zip(self.shadows, self.model_variables, strict=True):
            strategy.extended.update(
                shadow, move, args=(_tf_variable(variable), decay), group=False
            )

    def copy_to_model(self) -> None:
        """Overwrites the model weights with the shadows (for the final model / export)."""
        for shadow, variable in zip(self.shadows, self.model_variables, strict=True):
            variable.assign(tf.identity(shadow))

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Inside the block the model holds the EMA weights; the training weights come back
        afterwards (also on error)."""
        backup = [tf.identity(_tf_variable(v)) for v in self.model_variables]
        self.copy_to_model()
        try:
            yield
        finally:
            for variable, value in zip(self.model_variables, backup, strict=True):
                variable.assign(value)


def _tf_variable(variable):
    """The tf.Variable (or distributed variable) behind a Keras 3 variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable
