"""The settings of a Noisy Student run: `RunConfig`, the one home of each setting's name,
default, help text, choices and allowed range. The `noisy-student` flags are generated from it
(noisy_student.cli.flags), and the CLI fills it from them. No TensorFlow, so the command line
checks its flags before importing it.

Flag names follow the reference (`google-research/noisystudent` main.py) where it had one
(``unlabel_data``, ``teacher_softmax_temp``, ...), so its recipes translate directly.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

# Choices shared with the modules that implement them (they import these).
OPTIMIZERS = ("rmsprop", "momentum", "adamw")
LR_SCHEDULES = ("exponential", "cosine", "constant")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PSEUDO_LABEL_STORAGES = ("auto", "reference", "copy", "float32", "float16", "topk:5", "topk:10")
REFERENCE_FROM_CLASSES = 100  # --pseudo_label_storage=auto: reference records from here on
STUDENT_INITS = ("scratch", "teacher", "grow")

# Allowed ranges: (low, low inclusive, high, high inclusive); None = open. Unset (None) values
# are not checked.
POSITIVE = (0, False, None, False)
NON_NEGATIVE = (0, True, None, False)
FRACTION = (0, True, 1, False)


def setting(default: Any = dataclasses.MISSING, help: str = "", *,  # noqa: A002
            choices: Sequence[str] | None = None, bounds: tuple | None = None,
            default_factory: Callable[[], Any] | None = None) -> Any:
    """A RunConfig field with what its flag needs: help text, choices, range."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "bounds": bounds}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs; the CLI fills it from flags of the same names."""

    # Where.
    run_dir: str = setting(help="Run directory: checkpoints, pseudo labels, manifest.")
    # Data.
    label_data: str | None = setting(
        None, "Labeled TFRecords: a file pattern or comma-separated patterns (ImageNet layout), "
        "or 'tfds:NAME' for a TensorFlow Datasets source.")
    unlabel_data: str | None = setting(
        None, "Unlabeled TFRecords: a file pattern or comma-separated patterns.")
    eval_data: str | None = setting(
        None, "Evaluation TFRecords: a file pattern or comma-separated patterns, or 'tfds:NAME'.")
    label_offset: int = setting(
        1, "Subtracted from stored labels (1 for ImageNet-style 1-based files, 0 for 0-based).",
        bounds=NON_NEGATIVE)
    num_classes: int = setting(1000, "Number of classes.", bounds=POSITIVE)
    num_train_images: int | None = setting(
        None, "Labeled images per epoch; counted from the files when unset.", bounds=POSITIVE)
    shuffle_buffer: int = setting(
        1024, "Records each training input pipeline shuffles, before parsing (a record costs "
        "its bytes: ~110 KB for an ImageNet JPEG); at scale use ~16384.", bounds=POSITIVE)
    interleave_cycle_length: int = setting(
        16, "Files each input pipeline reads at once (records interleave across them).",
        bounds=POSITIVE)
    # Models.
    teacher_model: str = setting("efficientnet-b0", "Teacher architecture (b0..b8, l2).")
    teacher_checkpoint: str | None = setting(
        None, "Use this trained teacher (.keras or .weights.h5) instead of training one.")
    student_models: list[str] = setting(
        help="Student architecture per iteration, e.g. b0,b1,b2 runs three iterations.",
        default_factory=lambda: ["efficientnet-b0"])
    allow_smaller_student: bool = setting(False, "Allow a student smaller than its teacher.")
    student_init: str = setting(
        "scratch", "scratch: students start from random weights (the paper); teacher: each "
        "student starts from its teacher's EMA weights (the reference's --init_model; same "
        "architecture and image size only), so teacher + student steps are one continued "
        "training run; grow: each student starts as its teacher grown to the student's width "
        "and depth (efficientnet_tf.grow_model: same function, copied channels, identity "
        "blocks), so a larger student starts from the teacher's knowledge.",
        choices=STUDENT_INITS)
    image_size: int | None = setting(
        None, "Input size; defaults to each model's resolution (32 with --small_images).",
        bounds=(32, True, None, False))
    small_images: bool = setting(False, "32x32 variant (CIFAR/SVHN): stride-1 stages 2-3.")
    width_coefficient: float | None = setting(
        None, "Override the width multiplier of every model.", bounds=POSITIVE)
    depth_coefficient: float | None = setting(
        None, "Override the depth multiplier of every model.", bounds=POSITIVE)
    student_width_coefficient: float | None = setting(
        None, "Students' width multiplier (default: --width_coefficient), e.g. a wider student "
        "than the teacher.", bounds=POSITIVE)
    student_depth_coefficient: float | None = setting(
        None, "Students' depth multiplier (default: --depth_coefficient).", bounds=POSITIVE)
    grow_noise: float = setting(
        0.01, "With --student_init=grow: Gaussian noise, relative to each kernel's standard "
        "deviation, on the copied channels' kernels, so that copies can learn different "
        "features (0 keeps the grown student's function exactly the teacher's).",
        bounds=NON_NEGATIVE)
    # Training recipe.
    train_batch_size: int = setting(128, "Labeled images per global batch.", bounds=POSITIVE)
    eval_batch_size: int = setting(
        256, "Images per evaluation/labeling batch.", bounds=POSITIVE)
    train_epochs: float = setting(
        350, "Epochs of labeled data for the teacher.", bounds=POSITIVE)
    student_epochs: float | None = setting(
        None, "Epochs of labeled data for students (default: --train_epochs x "
        "--student_train_ratio).", bounds=POSITIVE)
    student_train_ratio: float | None = setting(
        None, "Student steps = ratio x teacher steps (the reference's train_ratio; its "
        "staircase period scales by the ratio too). Exclusive with --student_epochs; default 1.",
        bounds=POSITIVE)
    optimizer: str = setting(
        "rmsprop", "rmsprop: the reference's TF1 RMSProp; momentum: SGD with Nesterov momentum "
        "0.9; adamw: Keras AdamW with decoupled --weight_decay (x learning rate, batch norm "
        "excluded).", choices=OPTIMIZERS)
    base_learning_rate: float = setting(
        0.016, "Learning rate per 256 labeled images.", bounds=POSITIVE)
    final_base_lr: float | None = setting(
        None, "Learning rate per 256 labeled images at the last step (the reference's flag): "
        "sets the staircase period of 'exponential' so it ends there, and the floor of "
        "'cosine'.", bounds=NON_NEGATIVE)
    lr_schedule: str = setting(
        "exponential", "Learning rate schedule after warm-up.", choices=LR_SCHEDULES)
    student_lr_schedule: str | None = setting(
        None, "Students' schedule (default: --lr_schedule). Short teachers on few labels may "
        "learn best without annealing while their longer students need it (configs/demo.cfg).",
        choices=LR_SCHEDULES)
    student_base_learning_rate: float | None = setting(
        None, "Students' --base_learning_rate (default: --base_learning_rate). Students that "
        "start from their teacher's weights may need a higher peak rate to move away from it "
        "(configs/cifar10_4000.cfg).", bounds=POSITIVE)
    student_final_base_lr: float | None = setting(
        None, "Students' --final_base_lr (default: --final_base_lr).", bounds=NON_NEGATIVE)
    lr_warmup_epochs: float = setting(5.0, "Linear warm-up epochs.", bounds=NON_NEGATIVE)
    lr_decay_epochs: float = setting(
        2.4, "Epochs per x0.97 staircase step (ignored with --final_base_lr).", bounds=POSITIVE)
    weight_decay: float = setting(
        1e-5, "Weight decay on 0.5*||w||^2, batch norm excluded.", bounds=NON_NEGATIVE)
    label_smoothing: float = setting(
        0.1, "Label smoothing (labeled and hard pseudo labels).", bounds=FRACTION)
    moving_average_decay: float = setting(
        0.9999, "EMA decay (with (1+n)/(10+n) warm-up).", bounds=FRACTION)
    dropout_rate: float | None = setting(
        None, "Dropout before the classifier (default: preset).", bounds=FRACTION)
    stochastic_depth_rate: float = setting(
        0.2, "Stochastic depth: the drop rate of the last block (earlier blocks scale it "
        "linearly).", bounds=FRACTION)
    precision: str = setting("float32", "Compute precision.", choices=PRECISIONS)
    steps_per_loop: int = setting(
        10, "Training steps per call into TensorFlow (the reference's iterations_per_loop); "
        "loops also end at checkpoint, summary and epoch boundaries. A NaN loss is caught at "
        "the loop's end.", bounds=POSITIVE)
    seed: int | None = setting(
        None, "Seed for reproducible training: each training stage seeds Python, NumPy and "
        "TensorFlow (weight initialization, dropout, stochastic depth) with a value derived from "
        "this seed and the iteration (the teacher and each student differ), and its input "
        "pipelines shuffle and augment with it in a fixed order (deterministic tf.data, at some "
        "input throughput). Default: unseeded.", bounds=NON_NEGATIVE)
    deterministic: bool = setting(
        False, "With --seed: TensorFlow op determinism as well, so that rerunning a command on "
        "the same machine and software gives the same weights and results (slower; "
        "README 'Reproducibility' lists what still differs across machines).")
    checkpoint_every: int = setting(500, "Steps between checkpoints.", bounds=POSITIVE)
    summary_every: int = setting(
        100, "Steps between TensorBoard scalar summaries.", bounds=POSITIVE)
    # Noise and self-training.
    randaug_num_layers: int = setting(
        2, "RandAugment ops per image for students (0 = off).", bounds=NON_NEGATIVE)
    randaug_magnitude: float = setting(
        10.0, "RandAugment magnitude M (max level 10).", bounds=NON_NEGATIVE)
    teacher_randaug: bool = setting(False, "Also use RandAugment when training the teacher.")
    teacher_randaug_num_layers: int | None = setting(
        None, "With --teacher_randaug: the teacher's RandAugment ops per image (default: "
        "--randaug_num_layers), so teacher and students can take different input noise.",
        bounds=NON_NEGATIVE)
    teacher_randaug_magnitude: float | None = setting(
        None, "With --teacher_randaug: the teacher's RandAugment magnitude (default: "
        "--randaug_magnitude).", bounds=NON_NEGATIVE)
    unlabel_ratio: float = setting(
        1.0, "Unlabeled images per labeled image in a batch; also the weight of the unlabeled "
        "loss.", bounds=POSITIVE)
    teacher_softmax_temp: float = setting(
        1.0, "Temperature of soft pseudo labels; -1 for hard one-hot labels.")
    teacher_flip_average: bool = setting(
        False, "Pseudo labels average the teacher's distributions on each unlabeled image and "
        "on its horizontal mirror (test-time augmentation of the labels; not in the reference).")
    pseudo_label_storage: str = setting(
        "auto", "reference: pseudo-label records name their unlabeled image (file, record "
        "index) and keep the top --pseudo_label_topk classes (under 200 bytes at 1,000 "
        "classes); the student reads them beside --unlabel_data's files. copy (= float16): "
        "records hold a copy of the image and the float16 distribution; float32, topk:K: copy "
        "records with that distribution form. auto: reference from 100 classes on, else copy.",
        choices=PSEUDO_LABEL_STORAGES)
    pseudo_label_topk: int = setting(
        5, "Classes a reference pseudo-label record keeps (plus the mass of the others).",
        bounds=POSITIVE)
    min_threshold: float = setting(
        0.3, "Lowest confidence a pseudo label may have.", bounds=(0, True, 1, True))
    balance_classes: bool = setting(
        True, "Balance the filtered pseudo-labeled set per class (the reference's rule: "
        "subsample big classes, duplicate small ones, per class down to --min_threshold). "
        "False keeps every image at or above --min_threshold once.")
    num_image_per_class: int | None = setting(
        None, "Balanced images per class after filtering (default: unlabeled images / "
        "classes).", bounds=POSITIVE)
    filter_output_shards: int | None = setting(
        None, "Files the filter writes copy records to (default: 4 per worker, at least one "
        "per pseudo-label shard; rounded up to a multiple of those). Reference records keep "
        "one file per unlabeled file.", bounds=POSITIVE)
    on_the_fly_teacher: bool = setting(
        False, "Run the teacher inside the student's training step instead of storing pseudo "
        "labels.")
    # Distribution.
    strategy: str = setting("default", "tf.distribute strategy.", choices=STRATEGIES)
    tpu: str | None = setting(None, "TPU address for --strategy=tpu.")
    worker_index: int | None = setting(
        None, "This worker for labeling and filtering (default: TF_CONFIG).",
        bounds=NON_NEGATIVE)
    num_workers: int | None = setting(
        None, "Number of labeling and filtering workers (default: TF_CONFIG).", bounds=POSITIVE)
    wait_timeout: float = setting(
        6 * 3600.0, "Seconds a worker waits for the others' part of a stage (multi-worker "
        "labeling and filtering).", bounds=POSITIVE)
    # Export and run behaviour.
    export_dir: str | None = setting(
        None, "SavedModel directory (default: RUN_DIR/export).")
    quiet: bool = setting(False, "No progress bars.")
    redo_changed_stages: bool = setting(
        False, "Redo the finished stages whose settings differ from this command's (their "
        "outputs are deleted first) instead of stopping with the list of differing flags.")
    strict_data: bool = setting(
        False, "Stop with an error naming the file and record at a damaged TFRecord file or an "
        "undecodable image. Default: a damaged file loses only the records after the damage, "
        "an undecodable image is skipped, and every stage reports the totals.")

    def __post_init__(self) -> None:
        # Recorded resolved, so run directories labeled before "auto" existed still match.
        if self.pseudo_label_storage == "auto":
            self.pseudo_label_storage = ("reference" if self.num_classes >= REFERENCE_FROM_CLASSES
                                         else "float16")
        elif self.pseudo_label_storage == "copy":
            self.pseudo_label_storage = "float16"

    @property
    def hard_labels(self) -> bool:
        """--teacher_softmax_temp=-1: students train on one-hot pseudo labels."""
        return self.teacher_softmax_temp == -1

    @property
    def soft_label_temperature(self) -> float:
        """The temperature of the stored (always soft) pseudo labels: 1 with hard labels."""
        return 1.0 if self.hard_labels else self.teacher_softmax_temp

    def model_coefficients(self, iteration: int) -> dict[str, float]:
        """The width/depth overrides of the model of `iteration` (0 = teacher): the students'
        own where given, else the run's; empty where the model's preset applies."""
        overrides = {}
        for key in ("width_coefficient", "depth_coefficient"):
            value = getattr(self, f"student_{key}") if iteration > 0 else None
            value = getattr(self, key) if value is None else value
            if value is not None:
                overrides[key] = value
        return overrides

    @property
    def num_iterations(self) -> int:
        return len(self.student_models)

    def learning_rate_settings(self, student: bool) -> dict[str, tuple[str, Any]]:
        """The schedule, peak and final rate of the teacher's or the students' training, each
        as (the setting it comes from, its value): a student's own setting where it is given,
        else the run's."""

        pick = functools.partial(self._own_or_shared, use_own=student)
        return {"lr_schedule": pick("student_lr_schedule", "lr_schedule"),
                "base_learning_rate": pick("student_base_learning_rate", "base_learning_rate"),
                "final_base_learning_rate": pick("student_final_base_lr", "final_base_lr")}

    def randaug_settings(self, teacher: bool) -> dict[str, tuple[str, Any]]:
        """The teacher's or the students' RandAugment ops per image and magnitude, each as (the
        setting it comes from, its value): the teacher's own where given, else the students';
        a teacher without --teacher_randaug gets 0 ops."""
        num_layers = self._own_or_shared("teacher_randaug_num_layers", "randaug_num_layers",
                                         teacher)
        if teacher and not self.teacher_randaug:
            num_layers = ("teacher_randaug", 0)
        return {"num_layers": num_layers, "magnitude": self._own_or_shared(
            "teacher_randaug_magnitude", "randaug_magnitude", teacher)}

    def _own_or_shared(self, own: str, shared: str, use_own: bool) -> tuple[str, Any]:
        """(setting, value): `own` where `use_own` and it is given, else `shared`."""
        value = getattr(self, own) if use_own else None
        return (shared, getattr(self, shared)) if value is None else (own, value)
