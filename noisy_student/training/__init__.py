"""Training: the recipe (TF1 RMSProp, warm-up + staircase schedule, EMA, weight decay, label
smoothing), tf.distribute strategies and input distribution, checkpoints, what training
measures (``metrics``), where a student's weights start (``student_init``) and the training loop
for teachers and students (``trainer``). Used by the teacher and student stages and by labeling
(the on-the-fly teacher). May import the top-level modules only (``config``, ``targets``,
``console``, ``atomic_io``); no other subpackage."""

from noisy_student.training.checkpoints import Checkpointer, load_ema_model, save_model
from noisy_student.training.checks import check_student_size, require_logits
from noisy_student.training.config import TrainConfig
from noisy_student.training.ema import ExponentialMovingAverage, averaged_variables, ema_decay
from noisy_student.training.losses import (
    cross_entropy_sum,
    l2_penalty,
    smooth_labels,
    teacher_targets,
    weight_decay_variables,
)
from noisy_student.training.optimizer import TF1RMSprop
from noisy_student.training.precision import PRECISIONS, precision_policy, resolve_jit_compile
from noisy_student.training.schedules import WarmupDecaySchedule, scaled_learning_rate
from noisy_student.training.strategy import (
    STRATEGIES,
    is_chief,
    make_strategy,
    sync_batch_norm_for,
)
from noisy_student.training.trainer import NonFiniteLossError, Trainer, TrainResult, train

__all__ = [
    "PRECISIONS",
    "STRATEGIES",
    "Checkpointer",
    "ExponentialMovingAverage",
    "NonFiniteLossError",
    "TF1RMSprop",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WarmupDecaySchedule",
    "averaged_variables",
    "check_student_size",
    "cross_entropy_sum",
    "ema_decay",
    "is_chief",
    "l2_penalty",
    "load_ema_model",
    "make_strategy",
    "precision_policy",
    "require_logits",
    "resolve_jit_compile",
    "save_model",
    "scaled_learning_rate",
    "smooth_labels",
    "sync_batch_norm_for",
    "teacher_targets",
    "train",
    "weight_decay_variables",
]
