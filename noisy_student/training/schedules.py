"""Learning-rate schedule of the EfficientNet / Noisy Student recipe.

peak = base_lr * global_batch / 256 (0.016 per 256 images). The decay is computed on the
global step from 0 (the clock does not wait for warm-up); during the first
int(warmup_epochs * steps_per_epoch) steps the rate is peak * step / warmup_steps instead.
Decays: 'exponential' (staircase, x decay_factor every int(decay_epochs * steps_per_epoch) steps),
'cosine' (0.5 * peak * (1 + cos(pi * step / total_steps))) and 'constant'.
"""

from __future__ import annotations

import math

import keras
from keras import ops

SCHEDULES = ("exponential", "cosine", "constant")
REFERENCE_BATCH = 256


def scaled_learning_rate(base_learning_rate: float, global_batch_size: int) -> float:
    """The linear scaling rule of the reference: base_lr * batch / 256."""
    return base_learning_rate * global_batch_size / REFERENCE_BATCH


@keras.saving.register_keras_serializable(package="noisy_student")
class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0, then exponential (staircase), cosine or constant decay."""

    def __init__(
        self,
        peak_learning_rate: float,
        steps_per_epoch: float,
        decay: str = "exponential",
        warmup_epochs: float = 5.0,
        decay_epochs: float = 2.4,
        decay_factor: float = 0.97,
        total_steps: int | None = None,
    ):
        if decay not in SCHEDULES:
            raise ValueError(f"Unknown learning-rate schedule {decay!r}; use one of {SCHEDULES}.")
        if steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch}.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.steps_per_epoch = float(steps_per_epoch)
        self.decay = decay
        self.warmup_epochs = float(warmup_epochs)
        self.decay_epochs = float(decay_epochs)
        self.decay_factor = float(decay_factor)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(self.warmup_epochs * self.steps_per_epoch)
        self.decay_steps = max(1, int(self.decay_epochs * self.steps_per_epoch))
        if decay == "cosine" and not self.total_steps:
            raise ValueError("The cosine schedule needs total_steps > 0.")

    def __call__(self, step):
        step = ops.cast(step, "int64")
        step_f = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        if self.decay == "exponential":
            periods = ops.cast(ops.floor_divide(step, self.decay_steps), "float32")
            rate = peak * ops.power(self.decay_factor, periods)
        elif self.decay == "cosine":
            progress = ops.minimum(step_f / float(self.total_steps), 1.0)
            rate = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
        else:
            rate = ops.full((), peak, "float32")
        if self.warmup_steps > 0:
            warm = peak * step_f / float(self.warmup_steps)
            rate = ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "decay": self.decay,
            "warmup_epochs": self.warmup_epochs,
            "decay_epochs": self.decay_epochs,
            "decay_factor": self.decay_factor,
            "total_steps": self.total_steps,
        }
