"""Training configuration and the epoch / step accounting derived from it."""

from __future__ import annotations

import dataclasses
import math

from noisy_student.training.optimizer import OPTIMIZERS
from noisy_student.training.precision import PRECISIONS
from noisy_student.training.schedules import SCHEDULES


@dataclasses.dataclass
class TrainConfig:
    """Everything the training loop needs besides the model, data and strategy.

    Batch sizes are global (over all replicas). An epoch is `num_train_examples` labeled images;
    the student sees `unlabeled_batch_size = ceil(unlabel_ratio * batch_size)` unlabeled images
    per step on top of the `batch_size` labeled ones.
    """

    batch_size: int
    num_train_examples: int
    train_steps: int | None = None
    train_epochs: float | None = None
    # Optimizer and schedule (reference values).
    optimizer: str = "rmsprop"
    base_learning_rate: float = 0.016
    final_base_learning_rate: float | None = None  # per 256 images, like base_learning_rate
    lr_schedule: str = "exponential"
    warmup_epochs: float = 5.0
    lr_decay_epochs: float = 2.4
    lr_decay_factor: float = 0.97
    rmsprop_decay: float = 0.9
    rmsprop_momentum: float = 0.9
    rmsprop_epsilon: float = 1e-3
    # Regularization.
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    moving_average_decay: float = 0.9999
    # Noisy Student.
    unlabel_ratio: float = 0.0
    hard_pseudo_labels: bool = False
    teacher_temperature: float = 1.0
    teacher_same_input: bool = False
    teacher_flip_average: bool = False
    allow_smaller_student: bool = False
    # Execution.
    precision: str = "float32"
    jit_compile: bool | None = None
    steps_per_loop: int = 1
    checkpoint_every: int = 1000
    keep_checkpoints: int = 5
    summary_every: int = 100
    eval_every: int | None = None
    eval_batch_size: int = 64
    quiet: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (
                self.num_train_examples > 0,
                f"num_train_examples must be > 0, got {self.num_train_examples}",
            ),
            (
                (self.train_steps is None) != (self.train_epochs is None),
                "give exactly one of train_steps and train_epochs",
            ),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (
                self.final_base_learning_rate is None
                or 0 <= self.final_base_learning_rate < self.base_learning_rate,
                "final_base_learning_rate must be in [0, base_learning_rate)",
            ),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.unlabel_ratio >= 0, f"unlabel_ratio must be >= 0, got {self.unlabel_ratio}"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 <= self.moving_average_decay < 1, "moving_average_decay must be in [0, 1)"),
            (self.steps_per_loop >= 1, "steps_per_loop must be >= 1"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (self.summary_every >= 1, "summary_every must be >= 1"),
            (self.eval_every is None or self.eval_every >= 1, "eval_every must be >= 1 or None"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Bad TrainConfig: {message}.")
        if self.total_steps < 1:
            raise ValueError(
                f"Bad TrainConfig: {self.train_epochs} epochs of {self.num_train_examples} "
                f"images at batch {self.batch_size} is less than one step."
            )

    @property
    def steps_per_epoch(self) -> float:
        """Labeled images per epoch / global labeled batch (a float, as in the reference)."""
        return self.num_train_examples / self.batch_size

    @property
    def total_steps(self) -> int:
        if self.train_steps is not None:
            return int(self.train_steps)
        return int(self.train_epochs * self.steps_per_epoch)

    @property
    def unlabeled_batch_size(self) -> int:
        """ceil(unlabel_ratio * batch_size); 0 for supervised training."""
        return math.ceil(round(self.unlabel_ratio * self.batch_size, 6))  # 0.1 * 30 -> 3, not 4

    @property
    def is_student(self) -> bool:
        return self.unlabel_ratio > 0
