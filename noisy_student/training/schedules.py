"""Learning-rate schedule of the EfficientNet / Noisy Student recipe.

peak = base_lr * global_batch / 256 (0.016 per 256 images). The decay is computed on the
global step from 0 (the clock does not wait for warm-up); during the first
int(warmup_epochs * steps_per_epoch) steps the rate is peak * step / warmup_steps instead.
Decays: 'exponential' (staircase, x decay_factor at every multiple of the float period
decay_epochs * steps_per_epoch, as TF1's `exponential_decay(staircase=True)`),
'cosine' (from peak to the final rate: final + 0.5 * (peak - final) * (1 + cos(pi * step /
total_steps))) and 'constant'.

A short run with the ImageNet staircase barely anneals (30 epochs end at 0.97^12 = 0.69x of the
peak), so a final rate can be given instead of the decay period: the reference's
`final_base_lr` (per 256 images, like the base rate) sets the period to
(total_epochs - warmup_epochs) / log_decay_factor(final / peak), so the staircase reaches the
final rate at the last step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
from keras import ops

from noisy_student import console
from noisy_student.config import LR_SCHEDULES as SCHEDULES

if TYPE_CHECKING:  # training.config imports this module for SCHEDULES
    from noisy_student.training.config import TrainConfig

REFERENCE_BATCH = 256
# A schedule that ends above this fraction of its peak has not annealed (see end_fraction).
ANNEALED_FRACTION = 0.1


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
        final_learning_rate: float | None = None,
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
        self.final_learning_rate = (
            None if final_learning_rate is None else float(final_learning_rate)
        )
        self.warmup_steps = int(self.warmup_epochs * self.steps_per_epoch)
        if decay == "cosine" and not self.total_steps:
            raise ValueError("The cosine schedule needs total_steps > 0.")
        if self.final_learning_rate is not None:
            if not 0 <= self.final_learning_rate < self.peak_learning_rate:
                raise ValueError(
                    f"The final learning rate {self.final_learning_rate} must be in "
                    f"[0, peak {self.peak_learning_rate})."
                )
            if decay == "exponential":
                self.decay_epochs = decay_epochs_to_reach(
                    self.final_learning_rate / self.peak_learning_rate,
                    total_steps,
                    self.steps_per_epoch,
                    self.warmup_epochs,
                    self.decay_factor,
                )
        self.decay_steps = max(1.0, self.decay_epochs * self.steps_per_epoch)

    def __call__(self, step):
        step = ops.cast(step, "int64")
        step_f = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        if self.decay == "exponential":
            periods = ops.floor(step_f / self.decay_steps)
            rate = peak * ops.power(self.decay_factor, periods)
        elif self.decay == "cosine":
            final = self.final_learning_rate or 0.0
            progress = ops.minimum(step_f / float(self.total_steps), 1.0)
            rate = final + 0.5 * (peak - final) * (1.0 + ops.cos(math.pi * progress))
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
            "final_learning_rate": self.final_learning_rate,
        }

    def end_fraction(self) -> float | None:
        """The rate at the last step as a fraction of the peak (None without total_steps)."""
        if not self.total_steps:
            return None
        return float(self(self.total_steps - 1)) / self.peak_learning_rate


def decay_epochs_to_reach(
    final_fraction: float,
    total_steps: int | None,
    steps_per_epoch: float,
    warmup_epochs: float,
    decay_factor: float,
) -> float:
    """Staircase period (epochs) after which x decay_factor per period, counted over the
    epochs after warm-up, ends at final_fraction of the peak (the reference's final_base_lr)."""
    if not total_steps:
        raise ValueError("A final learning rate needs the schedule's total_steps.")
    if not 0 < final_fraction < 1 or not 0 < decay_factor < 1:
        raise ValueError(
            f"final/peak {final_fraction} and decay_factor {decay_factor} must be in (0, 1)."
        )
    decay_span = total_steps / steps_per_epoch - warmup_epochs
    if decay_span <= 0:
        raise ValueError(
            f"{total_steps} steps ({total_steps / steps_per_epoch:.2f} epochs) leave no time to "
            f"decay after {warmup_epochs} warm-up epochs."
        )
    return decay_span / (math.log(final_fraction) / math.log(decay_factor))


def learning_rate_schedule(config: TrainConfig) -> WarmupDecaySchedule:
    """The config's schedule; rates per 256 images are scaled to the global batch."""
    final = config.final_base_learning_rate
    if final is not None:
        final = scaled_learning_rate(final, config.batch_size)
    return WarmupDecaySchedule(
        scaled_learning_rate(config.base_learning_rate, config.batch_size),
        config.steps_per_epoch,
        decay=config.lr_schedule,
        warmup_epochs=config.warmup_epochs,
        decay_epochs=config.lr_decay_epochs,
        decay_factor=config.lr_decay_factor,
        total_steps=config.total_steps,
        final_learning_rate=final,
    )


def note_if_not_annealed(schedule: WarmupDecaySchedule) -> None:
    fraction = schedule.end_fraction()
    if fraction is not None and fraction > ANNEALED_FRACTION:
        console.log.info(
            "Note: the learning rate ends at %.0f%% of its peak (%s schedule over %d steps), "
            "so it never anneals; unless the recipe wants that, set --final_base_lr (e.g. 1%% "
            "of --base_learning_rate) or --lr_schedule=cosine.",
            100 * fraction,
            schedule.decay,
            schedule.total_steps,
        )
