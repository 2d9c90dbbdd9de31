"""The settings of a Noisy Student run (`RunConfig`); the CLI fills it from flags of the same
names. No TensorFlow, so the command line checks its flags before importing it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs; the CLI fills it from flags of the same names."""

    run_dir: str
    label_data: str | None = None
    unlabel_data: str | None = None
    eval_data: str | None = None
    label_offset: int = 1
    num_classes: int = 1000
    num_train_images: int | None = None
    teacher_model: str = "efficientnet-b0"
    teacher_checkpoint: str | None = None
    student_models: list[str] = dataclasses.field(default_factory=lambda: ["efficientnet-b0"])
    allow_smaller_student: bool = False
    student_init: str = "scratch"
    image_size: int | None = None
    small_images: bool = False
    width_coefficient: float | None = None
    depth_coefficient: float | None = None
    train_batch_size: int = 128
    eval_batch_size: int = 256
    train_epochs: float = 350
    student_epochs: float | None = None
    student_train_ratio: float | None = None
    optimizer: str = "rmsprop"
    base_learning_rate: float = 0.016
    final_base_lr: float | None = None
    lr_schedule: str = "exponential"
    student_lr_schedule: str | None = None
    student_final_base_lr: float | None = None
    lr_warmup_epochs: float = 5.0
    lr_decay_epochs: float = 2.4
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    moving_average_decay: float = 0.9999
    dropout_rate: float | None = None
    stochastic_depth_rate: float = 0.2
    precision: str = "float32"
    steps_per_loop: int = 10
    checkpoint_every: int = 500
    summary_every: int = 100
    randaug_num_layers: int = 2
    randaug_magnitude: float = 10.0
    teacher_randaug: bool = False
    unlabel_ratio: float = 1.0
    teacher_softmax_temp: float = 1.0
    pseudo_label_storage: str = "float16"
    min_threshold: float = 0.3
    num_image_per_class: int | None = None
    on_the_fly_teacher: bool = False
    strategy: str = "default"
    tpu: str | None = None
    worker_index: int | None = None
    num_workers: int | None = None
    export_dir: str | None = None
    quiet: bool = False
    wait_timeout: float = 6 * 3600.0
    redo_changed_stages: bool = False
    strict_data: bool = False

    @property
    def hard_labels(self) -> bool:
        """--teacher_softmax_temp=-1: students train on one-hot pseudo labels."""
        return self.teacher_softmax_temp == -1

    @property
    def soft_label_temperature(self) -> float:
        """The temperature of the stored (always soft) pseudo labels: 1 with hard labels."""
        return 1.0 if self.hard_labels else self.teacher_softmax_temp

    @property
    def num_iterations(self) -> int:
        return len(self.student_models)
