"""The Noisy Student loop: teacher -> pseudo labels -> filter/balance -> noised student -> repeat.

A run lives in one directory. `manifest.json` records each finished stage with its results and
the settings each started stage depends on; rerunning the same command skips finished stages and
resumes the first unfinished one (training resumes from its last checkpoint, labeling skips
finished shards, filtering reuses its stats). `Run.prepare` (before any work) removes the temp
files of killed writers and stops with a RunError when the settings differ from the recorded
ones (or, with redo_changed_stages, deletes and redoes the affected stages). The CLI holds the
directory's lock (noisy_student.run_lock) meanwhile.

    run_dir/
      manifest.json              stages done, their results and timings
      labels.txt                 class names, copied from beside the labeled data (if there)
      teacher/                   checkpoints, TensorBoard logs, model.keras (EMA weights)
      iter1/labels/              pseudo-labeled shards written by the teacher
      iter1/filtered/            balanced student records, stats.json, histogram PNG
      iter1/student/             like teacher/
      export/                    SavedModel of the final model
      report.md, report/         written at the end of a loop (noisy_student.report)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from efficientnet_tf import create_model, model_config
from efficientnet_tf.scaling import canonical_name
from noisy_student import evaluation, export, filtering, labeling, plots
from noisy_student.atomic_io import (
    read_json,
    remove_stale_temps,
    write_json_atomic,
    write_text_atomic,
)
from noisy_student.data import pipelines
from noisy_student.data.bad_data import DataStats
from noisy_student.data.preprocessing import preprocess_for_eval
from noisy_student.data.tfrecord_source import list_files, scan_file
from noisy_student.training import (
    TrainConfig,
    check_student_size,
    is_chief,
    load_ema_model,
    make_strategy,
    save_model,
    sync_batch_norm_for,
    train,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FINAL_MODEL = "model.keras"
# Labeled training images (the first ones, in file order) that every training stage scores at
# its end with eval preprocessing and EMA weights: teacher and noised students on equal terms.
CLEAN_TRAIN_IMAGES = 2000

# The settings each kind of stage adds to what it depends on (a stage depends on its own and on
# those of every stage before it in the model chain). A finished stage records them; a rerun
# with other values stops (or, with --redo_changed_stages, redoes it). Settings not listed
# (quiet, summary_every, checkpoint_every, steps_per_loop, eval_batch_size, strategy, workers,
# wait_timeout) do not change results and never block.
TEACHER_SETTINGS = (
    "label_data", "label_offset", "num_classes", "num_train_images", "teacher_model",
    "teacher_checkpoint", "image_size", "small_images", "width_coefficient", "depth_coefficient",
    "train_batch_size", "train_epochs", "optimizer", "base_learning_rate", "final_base_lr",
    "lr_schedule", "lr_warmup_epochs", "lr_decay_epochs", "weight_decay", "label_smoothing",
    "moving_average_decay", "dropout_rate", "stochastic_depth_rate", "precision",
    "teacher_randaug", "seed",
)
RANDAUG_SETTINGS = ("randaug_num_layers", "randaug_magnitude")
# (settings, step within an iteration: 1 label, 2 filter, 3 student)
ITERATION_SETTINGS = (
    (("unlabel_data", "teacher_softmax_temp", "pseudo_label_storage", "on_the_fly_teacher"), 1),
    (("min_threshold", "num_image_per_class"), 2),
    (("student_epochs", "student_train_ratio", "student_lr_schedule", "student_final_base_lr",
      "unlabel_ratio", "student_init", *RANDAUG_SETTINGS), 3),
)
STAGE_STEP = {"label": 1, "filter": 2, "student": 3, "eval": 3}
EVAL_SETTINGS = ("eval_data",)
EXPORT_SETTINGS = ("export_dir",)
# Output folders a stage writes (relative to the run directory), deleted when it is redone.
STAGE_OUTPUTS = {"teacher": "teacher", "label": "labels", "filter": "filtered",
                 "student": "student"}


class RunError(RuntimeError):
    """The run directory's state stops this command (a missing earlier stage, settings that
    differ from the finished stages', another command writing there); the message says what
    to do."""


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
    seed: int | None = None

    @property
    def hard_labels(self) -> bool:
        return self.teacher_softmax_temp == -1

    @property
    def num_iterations(self) -> int:
        return len(self.student_models)


def _normalized(name: str, value):
    """A setting as recorded: data patterns absolute, model names canonical, JSON types."""
    if value is None:
        return None
    if name in ("label_data", "unlabel_data", "eval_data", "teacher_checkpoint", "export_dir"):
        if not value.startswith("tfds:") and "://" not in value:
            value = ",".join(os.path.abspath(part.strip()) for part in value.split(","))
    elif name == "teacher_model":
        value = canonical_name(value)
    return json.loads(json.dumps(value))


def _stage_position(stage: str, num_iterations: int) -> tuple[int, int]:
    """(iteration, step) of a stage name: teacher stages are iteration 0, export follows the
    last student."""
    if stage in ("teacher", "teacher/eval"):
        return 0, 3
    if stage == "export":
        return num_iterations, 3
    prefix, kind = stage.split("/")
    return int(prefix[len("iter"):]), STAGE_STEP[kind]


def _global_batch(per_replica: int, context: tf.distribute.InputContext | None) -> int:
    """The trainer hands dataset functions per-replica batches; the pipelines take global ones
    and split them with the same input context."""
    return per_replica * (context.num_replicas_in_sync if context else 1)


class Run:
    """One run directory: its manifest, models, data and stages."""

    def __init__(self, config: RunConfig, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or make_strategy(config.strategy, config.tpu)
        self.chief = is_chief(self.strategy)
        tf.io.gfile.makedirs(config.run_dir)
        self.manifest_path = os.path.join(config.run_dir, MANIFEST)
        self.manifest = read_json(self.manifest_path) or {"stages": {}}
        self.data_stats = DataStats()  # what the current stage's pipelines read and skipped
        if self.chief:
            self._copy_labels_file()

    def _copy_labels_file(self) -> None:
        """Copies the labeled data's ``labels.txt`` into the run directory, so that plots and
        the report name the classes without knowing where the data were."""
        source = plots.labels_file_beside(self.config.label_data)
        if source is None:
            return
        with tf.io.gfile.GFile(source) as f:
            text = f.read()
        target = self.path(plots.LABELS_FILE)
        if tf.io.gfile.exists(target):
            with tf.io.gfile.GFile(target) as f:
                if f.read() == text:
                    return
        write_text_atomic(target, text)

    @functools.cached_property
    def class_names(self) -> list[str] | None:
        """Class names from the run's ``labels.txt``, or None (plots then show indices)."""
        return plots.class_names_or_none(self.path(plots.LABELS_FILE), self.config.num_classes)

    # ------------------------------------------------------------------------ manifest
    def done(self, stage: str) -> bool:
        return stage in self.manifest["stages"]

    def result(self, stage: str) -> dict:
        return self.manifest["stages"][stage]

    def _record(self, stage: str, result: dict | None) -> None:
        """Records a stage's settings (when it starts) or its result (when it is done), merged
        into the manifest on disk so that workers writing other stages lose nothing."""
        settings = self.stage_settings(stage)
        self.manifest.setdefault("settings", {})[stage] = settings
        if result is not None:
            self.manifest["stages"][stage] = result
        if self.chief:
            on_disk = read_json(self.manifest_path) or {"stages": {}}
            on_disk.setdefault("settings", {})[stage] = settings
            if result is not None:
                on_disk["stages"][stage] = result
            write_json_atomic(self.manifest_path, on_disk)

    def run_stage(self, stage: str, fn: Callable[[], dict]) -> dict:
        """Runs `fn` unless the manifest says `stage` is done; records its settings before and
        its result and time after."""
        if self.done(stage):
            log.info("Stage %s already complete; skipping.", stage)
            return self.result(stage)
        log.info("Stage %s starting.", stage)
        self._record(stage, None)
        self.data_stats.reset()
        start = time.time()
        result = dict(fn())
        result["seconds"] = round(time.time() - start, 1)
        if self.data_stats.result()["files"]:  # the stage read TFRecords through a pipeline
            result.update(self.data_stats.summary())
        self._log_data(stage, result)
        self._record(stage, result)
        return result

    @staticmethod
    def _log_data(stage: str, result: dict) -> None:
        """The stage's data line: skipped images and damaged files (WARNING when any)."""
        skipped, damaged = result.get("data_skipped", 0), result.get("data_damaged_files", {})
        if skipped or damaged:
            log.warning("Stage %s skipped %d undecodable images; damaged files (bytes unread; "
                        "their records after the damage are lost): %s", stage, skipped,
                        ", ".join(f"{name} ({unread})" for name, unread in damaged.items())
                        or "none")

    # ---------------------------------------------------------------- run-dir integrity
    def stage_settings(self, stage: str) -> dict:
        """The settings `stage` depends on: its own and those of the stages before it."""
        config = self.config
        iteration, step = _stage_position(stage, config.num_iterations)
        names = list(TEACHER_SETTINGS) + (list(RANDAUG_SETTINGS) if config.teacher_randaug else [])
        for group, group_step in ITERATION_SETTINGS:
            if iteration > 1 or (iteration == 1 and step >= group_step):
                names += [name for name in group if name not in names]
        names += list(EVAL_SETTINGS) if stage.endswith("/eval") else []
        names += list(EXPORT_SETTINGS) if stage == "export" else []
        settings = {name: _normalized(name, getattr(config, name)) for name in names}
        students = iteration if step == 3 else iteration - 1
        if students > 0:
            settings["student_models"] = [
                canonical_name(m) for m in config.student_models[:students]
            ]
        return settings

    def changed_settings(self) -> dict[str, dict[str, tuple]]:
        """{stage: {setting: (recorded, now)}} of the started or finished stages whose recorded
        settings differ from this command's, in stage order."""
        recorded = self.manifest.get("settings", {})
        changed = {}
        for stage, _ in self.stages():
            if stage not in recorded:
                continue
            now, then = self.stage_settings(stage), recorded[stage]
            diff = {key: (then.get(key), now.get(key)) for key in sorted({*now, *then})
                    if then.get(key) != now.get(key)}
            if diff:
                changed[stage] = diff
        return changed

    def check_settings(self) -> None:
        """Stops (RunError, before any work) when a started or finished stage was made with
        other result-affecting settings; with --redo_changed_stages forgets those stages and
        deletes their outputs instead."""
        changed = self.changed_settings()
        if not changed:
            return
        if self.config.redo_changed_stages:
            self._forget_from(next(iter(changed)), changed)
            return
        flags: dict[str, tuple] = {}
        for diff in changed.values():
            flags.update(diff)
        listing = "; ".join(f"--{name} was {then!r}, now {now!r}"
                            for name, (then, now) in flags.items())
        first = next(iter(changed))
        raise RunError(
            f"{self.config.run_dir} holds stages made with other settings ({listing}); the first "
            f"affected stage is {first}. Use a new --run_dir, or pass --redo_changed_stages to "
            f"redo {', '.join(changed)} (their outputs are deleted)."
        )

    def _forget_from(self, first: str, changed: dict) -> None:
        """Forgets the changed stages and every unfinished stage after `first` (their partial
        outputs were made with the old settings) and deletes their outputs."""
        names = [name for name, _ in self.stages()]
        redo = [name for name in names[names.index(first):]
                if name in changed or not self.done(name)]
        log.warning("Redoing stages %s with the new settings (--redo_changed_stages).",
                    ", ".join(redo))
        for stage in redo:
            self.manifest["stages"].pop(stage, None)
            self.manifest.get("settings", {}).pop(stage, None)
            output = self._stage_output(stage)
            if self.chief and output and os.path.exists(output):
                log.warning("Deleting %s (output of stage %s).", output, stage)
                shutil.rmtree(output)
        if self.chief:
            write_json_atomic(self.manifest_path, self.manifest)

    def _stage_output(self, stage: str) -> str | None:
        kind = stage.split("/")[-1]
        if kind not in STAGE_OUTPUTS:
            return None
        if stage == "teacher":
            return self.path("teacher")
        return self.path(stage.split("/")[0], STAGE_OUTPUTS[kind])

    def prepare(self) -> None:
        """Before any work (with the run directory locked): removes what killed writers left
        and checks the recorded settings."""
        remove_stale_temps(self.config.run_dir)
        self.check_settings()

    # --------------------------------------------------------------------------- paths
    def path(self, *parts: str) -> str:
        return os.path.join(self.config.run_dir, *parts)

    def model_dir(self, iteration: int) -> str:
        return self.path("teacher") if iteration == 0 else self.path(f"iter{iteration}", "student")

    def model_name(self, iteration: int) -> str:
        config = self.config
        return config.teacher_model if iteration == 0 else config.student_models[iteration - 1]

    # ---------------------------------------------------------------------- models
    def image_size(self, name: str) -> int:
        if self.config.image_size:
            return self.config.image_size
        return 32 if self.config.small_images else model_config(name)["default_resolution"]

    def model_fn(self, name: str, for_training: bool = True) -> Callable[[], keras.Model]:
        """Builds `name` with the run's overrides; outputs logits."""
        config = self.config
        size = self.image_size(name)
        overrides = {
            "classes": config.num_classes,
            "small_images": config.small_images,
            "input_shape": (size, size, 3),
            "classifier_activation": None,
            "stochastic_depth_rate": config.stochastic_depth_rate,
            "sync_batch_norm": for_training and sync_batch_norm_for(self.strategy),
        }
        for key in ("width_coefficient", "depth_coefficient", "dropout_rate"):
            if getattr(config, key) is not None:
                overrides[key] = getattr(config, key)
        return lambda: create_model(name, **overrides)

    def load_model(self, iteration: int) -> keras.Model:
        """The trained model of an iteration (0 = teacher), with its EMA weights."""
        if iteration == 0 and self.config.teacher_checkpoint:
            model = self.model_fn(self.model_name(0), for_training=False)()
            model.load_weights(self.config.teacher_checkpoint)
            return model
        path = os.path.join(self.model_dir(iteration), FINAL_MODEL)
        if os.path.exists(path):
            return keras.models.load_model(path, compile=False)
        if tf.train.latest_checkpoint(self.model_dir(iteration)) is None:
            what = "teacher" if iteration == 0 else f"student of iteration {iteration}"
            raise RunError(
                f"No trained {what} in {self.model_dir(iteration)}: run the loop (or --mode="
                f"{'train' if iteration == 0 else f'student --iteration={iteration}'}) first"
                + (", or pass --teacher_checkpoint." if iteration == 0 else ".")
            )
        return load_ema_model(
            self.model_dir(iteration), self.model_fn(self.model_name(iteration), False)
        )

    # ------------------------------------------------------------------------- data
    @functools.cached_property
    def num_train_images(self) -> int:
        """Labeled images per epoch: the flag, else one count over the files (kept, since
        every training stage needs it and ImageNet has 1.28M records)."""
        if self.config.num_train_images:
            return self.config.num_train_images
        if self.config.label_data.startswith("tfds:"):
            raise ValueError("Set --num_train_images for a tfds: labeled source.")
        strict = self.config.strict_data
        return sum(scan_file(f, strict=strict).num_records
                   for f in list_files(self.config.label_data))

    def _labeled_fn(self, size: int, randaug: bool, seed: int | None = None):
        config = self.config

        def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
            return pipelines.labeled_dataset(
                config.label_data,
                image_size=size,
                batch_size=_global_batch(batch_size, context),
                training=True,
                num_classes=config.num_classes,
                label_offset=config.label_offset,
                small_image=config.small_images,
                randaug_num_layers=config.randaug_num_layers if randaug else 0,
                randaug_magnitude=config.randaug_magnitude,
                input_context=context,
                stats=self.data_stats,
                strict=config.strict_data,
                **_seeded(seed),
            )

        return dataset_fn

    def _pseudo_fn(self, pattern: str, size: int, seed: int | None = None):
        config = self.config

        def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
            return pipelines.pseudo_labeled_dataset(
                pattern,
                image_size=size,
                batch_size=_global_batch(batch_size, context),
                num_classes=config.num_classes,
                training=True,
                hard=config.hard_labels,
                small_image=config.small_images,
                randaug_num_layers=config.randaug_num_layers,
                randaug_magnitude=config.randaug_magnitude,
                input_context=context,
                stats=self.data_stats,
                strict=config.strict_data,
                **_seeded(seed),
            )

        return dataset_fn

    def _clean_train_fn(self, size: int):
        """Up to CLEAN_TRAIN_IMAGES labeled training images, eval preprocessing."""
        config = self.config
        num_images = min(CLEAN_TRAIN_IMAGES, self.num_train_images)

        def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
            global_batch = _global_batch(batch_size, context)
            return pipelines.labeled_dataset(
                config.label_data,
                image_size=size,
                batch_size=global_batch,
                training=False,
                num_classes=config.num_classes,
                label_offset=config.label_offset,
                small_image=config.small_images,
                input_context=context,
                strict=config.strict_data,  # counts of its own: it rereads training images
            ).take(math.ceil(num_images / global_batch))

        return dataset_fn

    def eval_dataset(self, size: int) -> tf.data.Dataset:
        config = self.config
        return pipelines.labeled_dataset(
            config.eval_data,
            image_size=size,
            batch_size=config.eval_batch_size,
            training=False,
            num_classes=config.num_classes,
            label_offset=config.label_offset,
            small_image=config.small_images,
            stats=self.data_stats,
            strict=config.strict_data,
        )

    def training_seed(self, iteration: int) -> int | None:
        """The seed of the training stage of `iteration` (0 = teacher): derived from --seed and
        the iteration, so teacher and students differ but each is reproducible; None without
        --seed."""
        if self.config.seed is None:
            return None
        return int(np.random.SeedSequence([self.config.seed, iteration]).generate_state(1)[0]
                   >> 1)  # 31 bits: a valid seed for every consumer

    def _seed_training(self, iteration: int) -> int | None:
        """With --seed, seeds Python, NumPy and TensorFlow (weight initialization, dropout,
        stochastic depth) for the training stage of `iteration`; returns the stage's seed for
        its input pipelines."""
        seed = self.training_seed(iteration)
        if seed is not None:
            log.info("Seeding the training of iteration %d with %d (--seed=%d).", iteration,
                     seed, self.config.seed)
            keras.utils.set_random_seed(seed)
        return seed

    def train_config(self, student: bool) -> TrainConfig:
        config = self.config
        epochs, decay_epochs = config.train_epochs, config.lr_decay_epochs
        schedule, final = config.lr_schedule, config.final_base_lr
        if student:
            schedule = config.student_lr_schedule or schedule
            if config.student_final_base_lr is not None:
                final = config.student_final_base_lr
        if student and config.student_epochs:
            epochs = config.student_epochs
        elif student and config.student_train_ratio:  # reference: steps and period scale
            epochs *= config.student_train_ratio
            decay_epochs *= config.student_train_ratio
        return TrainConfig(
            batch_size=config.train_batch_size,
            num_train_examples=self.num_train_images,
            train_epochs=epochs,
            optimizer=config.optimizer,
            base_learning_rate=config.base_learning_rate,
            final_base_learning_rate=final,
            lr_schedule=schedule,
            warmup_epochs=config.lr_warmup_epochs,
            lr_decay_epochs=decay_epochs,
            weight_decay=config.weight_decay,
            label_smoothing=config.label_smoothing,
            moving_average_decay=config.moving_average_decay,
            unlabel_ratio=config.unlabel_ratio if student else 0.0,
            hard_pseudo_labels=config.hard_labels,
            teacher_temperature=1.0 if config.hard_labels else config.teacher_softmax_temp,
            allow_smaller_student=config.allow_smaller_student,
            precision=config.precision,
            steps_per_loop=config.steps_per_loop,
            checkpoint_every=config.checkpoint_every,
            summary_every=config.summary_every,
            eval_batch_size=config.eval_batch_size,
            quiet=config.quiet,
        )

    # ------------------------------------------------------------------------ stages
    def train_teacher(self) -> dict:
        if self.config.teacher_checkpoint:
            return {"given": self.config.teacher_checkpoint, **self.evaluate(0)}
        name = self.model_name(0)
        seed = self._seed_training(0)
        result = train(
            self.model_fn(name),
            self.train_config(student=False),
            self._labeled_fn(self.image_size(name), self.config.teacher_randaug, seed),
            self.model_dir(0),
            self.strategy,
            train_eval_data=self._clean_train_fn(self.image_size(name)),
        )
        return self._finish_training(0, result)

    def train_student(self, iteration: int) -> dict:
        config = self.config
        name = self.model_name(iteration)
        size = self.image_size(name)
        seed = self._seed_training(iteration)
        # The unlabeled stream gets a seed of its own (shuffle and augmentation).
        unlabeled_seed = None if seed is None else seed + 1
        teacher = self.load_model(iteration - 1)
        student_fn = self.model_fn(name)
        if config.student_init == "teacher":
            student_fn = _initialized_from(student_fn, teacher)
        if not config.on_the_fly_teacher:  # with a teacher in the step, the trainer checks
            check_student_size(student_fn(), teacher, config.allow_smaller_student)
        if config.on_the_fly_teacher:
            unlabeled = self._on_the_fly_fn(size, self.image_size(self.model_name(iteration - 1)),
                                            unlabeled_seed)
            teacher_arg = teacher
        else:
            unlabeled = self._pseudo_fn(self.filtered_pattern(iteration), size, unlabeled_seed)
            teacher_arg = None
        result = train(
            student_fn,
            self.train_config(student=True),
            self._labeled_fn(size, randaug=True, seed=seed),
            self.model_dir(iteration),
            self.strategy,
            unlabeled_data=unlabeled,
            teacher=teacher_arg,
            train_eval_data=self._clean_train_fn(size),
        )
        return self._finish_training(iteration, result)

    def _on_the_fly_fn(self, size: int, teacher_size: int, seed: int | None = None):
        """Unlabeled batches of (noised student images, clean teacher images)."""
        config = self.config

        def teacher_view(images, encoded):
            clean = tf.map_fn(
                lambda data: preprocess_for_eval(
                    data, teacher_size, small_image=config.small_images
                ),
                encoded,
                fn_output_signature=tf.TensorSpec([teacher_size, teacher_size, 3]),
            )
            return images, clean

        def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
            dataset = pipelines.unlabeled_dataset(
                config.unlabel_data,
                image_size=size,
                batch_size=_global_batch(batch_size, context),
                training=True,
                small_image=config.small_images,
                randaug_num_layers=config.randaug_num_layers,
                randaug_magnitude=config.randaug_magnitude,
                input_context=context,
                include_encoded=True,
                stats=self.data_stats,
                strict=config.strict_data,
                **_seeded(seed),
            )
            return dataset.map(teacher_view, num_parallel_calls=tf.data.AUTOTUNE)

        return dataset_fn

    def _finish_training(self, iteration: int, result) -> dict:
        path = os.path.join(self.model_dir(iteration), FINAL_MODEL)
        if self.chief:
            save_model(result.model, path)
        summary = {"model": self.model_name(iteration), "steps": result.step}
        summary.update({f"train_{k}": round(v, 4) for k, v in result.metrics.items()})
        if result.clean_train_metrics:
            summary["clean_train_top1"] = round(result.clean_train_metrics["top1"], 4)
        return summary

    def label(self, iteration: int) -> dict:
        """Labels this worker's share of the unlabeled shards, then waits for the others'."""
        config = self.config
        name = self.model_name(iteration - 1)
        teacher = self.load_model(iteration - 1)
        output_dir = self.path(f"iter{iteration}", "labels")
        labeling.label_shards(
            teacher,
            config.unlabel_data,
            output_dir,
            image_size=self.image_size(name),
            small_image=config.small_images,
            batch_size=config.eval_batch_size,
            # Stored labels stay soft even for hard-label training: filtering ranks by
            # confidence, and the student's pipeline takes the argmax (hard=True).
            temperature=1.0 if config.hard_labels else config.teacher_softmax_temp,
            from_logits=True,
            worker_index=config.worker_index,
            num_workers=config.num_workers,
            storage=config.pseudo_label_storage,
            strict=config.strict_data,
        )
        self._wait(
            "the other workers' pseudo-label shards",
            lambda: not labeling.unfinished_shards(config.unlabel_data, output_dir),
        )
        totals = labeling.label_totals(config.unlabel_data, output_dir)  # all workers, all runs
        return totals

    def _wait(self, what: str, done: Callable[[], bool]) -> None:
        """Blocks until another worker's part of a stage is done (multi-worker runs only)."""
        timeout = self.config.wait_timeout
        start = next_log = time.monotonic()
        while not done():
            if time.monotonic() - start > timeout:
                raise TimeoutError(
                    f"Waited {timeout:.0f} s (--wait_timeout) for {what}; is every worker "
                    "running? Rerun the same command to resume."
                )
            if time.monotonic() >= next_log:
                log.info("Waiting for %s.", what)
                next_log += 300
            time.sleep(min(10.0, timeout / 10))

    def filtered_pattern(self, iteration: int) -> str:
        return self.path(f"iter{iteration}", "filtered", "train-*")

    def filter(self, iteration: int) -> dict:
        config = self.config
        labels_pattern = labeling.pseudo_label_pattern(self.path(f"iter{iteration}", "labels"))
        per_class = config.num_image_per_class
        if per_class is None:
            total = sum(scan_file(f, strict=config.strict_data).num_records
                        for f in list_files(labels_pattern))
            per_class = max(1, math.ceil(total / config.num_classes))
        output_dir = self.path(f"iter{iteration}", "filtered")
        if not self.chief:  # one writer; the other workers wait for its statistics
            self._wait("the chief's filtered records", lambda: filtering.is_complete(output_dir))
        stats = filtering.filter_and_balance(
            labels_pattern,
            output_dir,
            num_classes=config.num_classes,
            num_image_per_class=per_class,
            min_threshold=config.min_threshold,
            class_names=self.class_names,
            strict=config.strict_data,
        )
        if stats["num_written"] == 0:
            raise RuntimeError(
                f"No pseudo-labeled image of iteration {iteration} reached --min_threshold="
                f"{config.min_threshold} (see {stats.get('histogram')} in "
                f"{self.path(f'iter{iteration}', 'filtered')}). Train the teacher longer or "
                "lower --min_threshold, delete that directory and rerun."
            )
        result = {key: stats[key] for key in ("num_input_records", "num_kept", "num_written")}
        return {**result, "data_damaged_files": stats.get("damaged_files", {})}

    def evaluate(self, iteration: int) -> dict:
        name = self.model_name(iteration)
        if not self.config.eval_data:
            return {}
        model = self.load_model(iteration)
        metrics = evaluation.evaluate(model, self.eval_dataset(self.image_size(name)))
        return {key: metrics[key] for key in ("top1", "top5", "num_examples")}

    def export(self) -> dict:
        iteration = self.config.num_iterations
        name = self.model_name(iteration)
        export_dir = self.config.export_dir or self.path("export")
        export.export_saved_model(
            self.load_model(iteration),
            export_dir,
            image_size=self.image_size(name),
            small_image=self.config.small_images,
        )
        return {"export_dir": export_dir, "model": name}

    # ---------------------------------------------------------------------- the loop
    def stages(self) -> list[tuple[str, Callable[[], dict]]]:
        """Every stage of the run, in order."""
        stages = [("teacher", self.train_teacher), ("teacher/eval", lambda: self.evaluate(0))]
        for i in range(1, self.config.num_iterations + 1):
            prefix = f"iter{i}"
            if not self.config.on_the_fly_teacher:
                stages += [
                    (f"{prefix}/label", lambda i=i: self.label(i)),
                    (f"{prefix}/filter", lambda i=i: self.filter(i)),
                ]
            stages += [
                (f"{prefix}/student", lambda i=i: self.train_student(i)),
                (f"{prefix}/eval", lambda i=i: self.evaluate(i)),
            ]
        return stages + [("export", self.export)]

    def run_all(self) -> dict:
        for stage, fn in self.stages():
            self.run_stage(stage, fn)
        return self.manifest


def _seeded(seed: int | None) -> dict:
    """Input-pipeline arguments of a training stage's seed: with one, the pipeline shuffles with
    it and runs deterministically (fixed element order and per-image augmentation seeds), so a
    seeded stage sees the same batches every time; without, today's unseeded pipeline."""
    return {"seed": seed, "deterministic": seed is not None}


def _initialized_from(model_fn: Callable[[], keras.Model],
                      source: keras.Model) -> Callable[[], keras.Model]:
    """`model_fn` whose models start from `source`'s weights (--student_init=teacher); the two
    must be the same architecture. A resumed stage then restores its own checkpoint on top."""

    def build() -> keras.Model:
        model = model_fn()
        mine = [tuple(w.shape) for w in model.weights]
        theirs = [tuple(w.shape) for w in source.weights]
        if mine != theirs:
            raise ValueError(
                f"--student_init=teacher needs a student with the teacher's architecture and "
                f"image size; {model.name} ({len(mine)} weights) differs from the teacher "
                f"{source.name} ({len(theirs)} weights). Use --student_init=scratch for a "
                "larger student.")
        model.set_weights(source.get_weights())
        return model

    return build

