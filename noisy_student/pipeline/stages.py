"""The stages of a Noisy Student run, as plain functions over one `Context`.

Each stage function takes the context and an iteration (0 = the teacher) and returns the
result the manifest records; `STAGE_FUNCTIONS` maps each kind of stage (run_layout) to its
function. The helpers below build the run's models and its data the same way for every stage.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from efficientnet_tf import create_model, model_config
from noisy_student.config import RunConfig
from noisy_student.data import pipelines
from noisy_student.data.bad_data import DataStats
from noisy_student.data.preprocessing import preprocess_for_eval
from noisy_student.data.tfrecord_source import count_records
from noisy_student.evaluation import classification, loading
from noisy_student.export import saved_model
from noisy_student.pseudo_labels import filtering, labeling
from noisy_student.run import layout
from noisy_student.run.directory import RunDir, RunError
from noisy_student.run.workers import wait_for
from noisy_student.training import (
    TrainConfig,
    check_student_size,
    is_chief,
    make_strategy,
    save_model,
    sync_batch_norm_for,
    train,
)
from noisy_student.training.checkpoints import check_classes
from noisy_student.training.student_init import grown_from, initialized_from

log = logging.getLogger(__name__)

# Labeled training images (the first ones, in file order) that every training stage scores at
# its end with eval preprocessing and EMA weights: teacher and noised students on equal terms.
CLEAN_TRAIN_IMAGES = 2000


@dataclasses.dataclass
class Context:
    """What every stage works with: the run's settings, its distribution strategy, its run
    directory, and what the current stage's pipelines read and skipped."""

    config: RunConfig
    strategy: tf.distribute.Strategy
    run_dir: RunDir
    data_stats: DataStats = dataclasses.field(default_factory=DataStats)

    @classmethod
    def create(cls, config: RunConfig, strategy: tf.distribute.Strategy | None = None
               ) -> Context:
        """The context of `config`'s run directory (created if new); the chief copies the
        labeled data's class names into it."""
        strategy = strategy or make_strategy(config.strategy, config.tpu)
        run_dir = RunDir(config, chief=is_chief(strategy))
        if run_dir.chief:
            run_dir.copy_labels_file()
        return cls(config, strategy, run_dir)

    @property
    def chief(self) -> bool:
        return self.run_dir.chief

    @functools.cached_property
    def num_train_images(self) -> int:
        """Labeled images per epoch: the flag, else one count over the files (kept, since
        every training stage needs it and ImageNet has 1.28M records)."""
        if self.config.num_train_images:
            return self.config.num_train_images
        if self.config.label_data.startswith("tfds:"):
            raise ValueError("Set --num_train_images for a tfds: labeled source.")
        return count_records(self.config.label_data, strict=self.config.strict_data)


# ----------------------------------------------------------------------------- models
def model_dir(ctx: Context, iteration: int) -> str:
    return ctx.run_dir.path(layout.model_dir(iteration))


def model_name(ctx: Context, iteration: int) -> str:
    config = ctx.config
    return config.teacher_model if iteration == 0 else config.student_models[iteration - 1]


def image_size(ctx: Context, name: str) -> int:
    if ctx.config.image_size:
        return ctx.config.image_size
    return 32 if ctx.config.small_images else model_config(name)["default_resolution"]


def model_fn(ctx: Context, iteration: int, for_training: bool = True
             ) -> Callable[[], keras.Model]:
    """Builds the model of `iteration` (0 = teacher) with the run's overrides; outputs
    logits."""
    config = ctx.config
    name = model_name(ctx, iteration)
    size = image_size(ctx, name)
    overrides = {
        "classes": config.num_classes,
        "small_images": config.small_images,
        "input_shape": (size, size, 3),
        "classifier_activation": None,
        "stochastic_depth_rate": config.stochastic_depth_rate,
        "sync_batch_norm": for_training and sync_batch_norm_for(ctx.strategy),
        **config.model_coefficients(iteration),
    }
    if config.dropout_rate is not None:
        overrides["dropout_rate"] = config.dropout_rate
    return lambda: create_model(name, **overrides)


def load_model(ctx: Context, iteration: int) -> keras.Model:
    """The trained model of an iteration (0 = teacher), with its EMA weights: the model
    folder read by ``evaluation.loading.load_model`` (the one loader), or the teacher from
    --teacher_checkpoint."""
    if iteration == 0 and ctx.config.teacher_checkpoint:
        check_classes(ctx.config.teacher_checkpoint, ctx.config.num_classes)
        model = model_fn(ctx, 0, for_training=False)()
        model.load_weights(ctx.config.teacher_checkpoint)
        return model
    folder = model_dir(ctx, iteration)
    path = os.path.join(folder, layout.FINAL_MODEL)
    if os.path.exists(path):
        check_classes(path, ctx.config.num_classes)
    elif tf.train.latest_checkpoint(folder) is None:
        what = "teacher" if iteration == 0 else f"student of iteration {iteration}"
        raise RunError(
            f"No trained {what} in {folder}: run the loop (or --mode="
            f"{'teacher' if iteration == 0 else f'student --iteration={iteration}'}) first"
            + (", or pass --teacher_checkpoint." if iteration == 0 else ".")
        )
    model, _ = loading.load_model(folder, model_fn=model_fn(ctx, iteration, False))
    return model


# TrainConfig (the training library's own API) fields that take a run setting of another name;
# every other TrainConfig field with a RunConfig namesake takes that setting as it is.
TRAIN_SETTING_NAMES = {"batch_size": "train_batch_size", "warmup_epochs": "lr_warmup_epochs",
                       "final_base_learning_rate": "final_base_lr"}


def train_config(ctx: Context, student: bool) -> TrainConfig:
    """The trainer's settings for the teacher or a student: the run's settings, with the
    students' own length, schedule, peak and final rate, and the pseudo-label settings."""
    config = ctx.config
    run_settings = {field.name for field in dataclasses.fields(config)}
    settings = {}
    for field in dataclasses.fields(TrainConfig):
        name = TRAIN_SETTING_NAMES.get(field.name, field.name)
        if name in run_settings:
            settings[field.name] = getattr(config, name)
    settings.update(num_train_examples=ctx.num_train_images,
                    unlabel_ratio=config.unlabel_ratio if student else 0.0,
                    hard_pseudo_labels=config.hard_labels,
                    teacher_temperature=config.soft_label_temperature)
    if not student:
        return TrainConfig(**settings)
    settings.update({name: value for name, (_, value)
                     in config.learning_rate_settings(student=True).items()})
    if config.student_epochs:
        settings["train_epochs"] = config.student_epochs
    elif config.student_train_ratio:  # reference: steps and period scale
        settings["train_epochs"] = config.train_epochs * config.student_train_ratio
        settings["lr_decay_epochs"] = config.lr_decay_epochs * config.student_train_ratio
    return TrainConfig(**settings)


# ------------------------------------------------------------------------------- data
def _global_batch(per_replica: int, context: tf.distribute.InputContext | None) -> int:
    """The trainer hands dataset functions per-replica batches; the pipelines take global ones
    and split them with the same input context."""
    return per_replica * (context.num_replicas_in_sync if context else 1)


def input_options(ctx: Context, size: int, batch_size: int, *, training: bool,
                  randaug: bool = False, teacher: bool = False, count: bool = True,
                  input_context: tf.distribute.InputContext | None = None,
                  seed: int | None = None) -> pipelines.InputOptions:
    """The run's pipeline options: its image variant, RandAugment (`randaug`: the teacher's
    settings if `teacher`, else the students') and bad-data policy; `count` adds what is read
    to the stage's data counts. With a training stage's `seed`, the pipeline shuffles with it
    and runs deterministically (fixed element order and per-image augmentation seeds), so a
    seeded stage sees the same batches every time."""
    config = ctx.config
    randaug_settings = config.randaug_settings(teacher)
    return pipelines.InputOptions(
        image_size=size,
        batch_size=batch_size,
        training=training,
        small_images=config.small_images,
        randaug_num_layers=randaug_settings["num_layers"][1] if randaug else 0,
        randaug_magnitude=randaug_settings["magnitude"][1],
        input_context=input_context,
        stats=ctx.data_stats if count else None,
        strict=config.strict_data,
        shuffle_buffer=config.shuffle_buffer,
        cycle_length=config.interleave_cycle_length,
        seed=seed,
        deterministic=seed is not None,
    )


def training_data_fn(ctx: Context, size: int, build: Callable[..., tf.data.Dataset], *,
                     randaug: bool, teacher: bool = False, seed: int | None = None):
    """The trainer's dataset function (per-replica batch size, input context) ->
    ``build(options)`` for training."""

    def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
        global_batch = _global_batch(batch_size, context)
        return build(input_options(ctx, size, global_batch, training=True, randaug=randaug,
                                   teacher=teacher, input_context=context, seed=seed))

    return dataset_fn


def labeled_fn(ctx: Context, size: int, randaug: bool, seed: int | None = None, *,
               teacher: bool = False):
    config = ctx.config
    return training_data_fn(ctx, size, functools.partial(
        pipelines.labeled_dataset, config.label_data, num_classes=config.num_classes,
        label_offset=config.label_offset), randaug=randaug, teacher=teacher, seed=seed)


def pseudo_fn(ctx: Context, pattern: str, size: int, seed: int | None = None):
    config = ctx.config
    return training_data_fn(ctx, size, functools.partial(
        pipelines.pseudo_labeled_dataset, pattern, num_classes=config.num_classes,
        hard=config.hard_labels, source_data=config.unlabel_data), randaug=True, seed=seed)


def clean_train_fn(ctx: Context, size: int):
    """Up to CLEAN_TRAIN_IMAGES labeled training images, eval preprocessing."""
    config = ctx.config
    num_images = min(CLEAN_TRAIN_IMAGES, ctx.num_train_images)

    def dataset_fn(batch_size: int, context: tf.distribute.InputContext | None = None):
        global_batch = _global_batch(batch_size, context)
        options = input_options(ctx, size, global_batch, training=False, input_context=context,
                                count=False)  # counts of its own: it rereads training images
        return pipelines.labeled_dataset(
            config.label_data, options, num_classes=config.num_classes,
            label_offset=config.label_offset,
        ).take(math.ceil(num_images / global_batch))

    return dataset_fn


def on_the_fly_fn(ctx: Context, size: int, teacher_size: int, seed: int | None = None):
    """Unlabeled batches of (noised student images, clean teacher images)."""
    config = ctx.config

    def teacher_view(images, encoded):
        clean = tf.map_fn(
            lambda data: preprocess_for_eval(data, teacher_size, small_images=config.small_images),
            encoded,
            fn_output_signature=tf.TensorSpec([teacher_size, teacher_size, 3]),
        )
        return images, clean

    def build(options: pipelines.InputOptions) -> tf.data.Dataset:
        dataset = pipelines.unlabeled_dataset(config.unlabel_data, options, include_encoded=True)
        return dataset.map(teacher_view, num_parallel_calls=tf.data.AUTOTUNE)

    return training_data_fn(ctx, size, build, randaug=True, seed=seed)


def eval_dataset(ctx: Context, size: int) -> tf.data.Dataset:
    config = ctx.config
    options = input_options(ctx, size, config.eval_batch_size, training=False)
    return pipelines.labeled_dataset(config.eval_data, options, num_classes=config.num_classes,
                                     label_offset=config.label_offset)


# ----------------------------------------------------------------------------- stages
def train_model(ctx: Context, iteration: int) -> dict:
    """Trains the teacher (iteration 0; or evaluates a given --teacher_checkpoint) or the
    student of an iteration."""
    return train_student(ctx, iteration) if iteration else train_teacher(ctx)


def training_seed(ctx: Context, iteration: int) -> int | None:
    """The seed of the training stage of `iteration` (0 = teacher): derived from --seed and
    the iteration, so teacher and students differ but each is reproducible; None without
    --seed."""
    if ctx.config.seed is None:
        return None
    state = np.random.SeedSequence([ctx.config.seed, iteration]).generate_state(1)[0]
    return int(state >> 1)  # 31 bits: a valid seed for every consumer


def seed_training(ctx: Context, iteration: int) -> int | None:
    """With --seed, seeds Python, NumPy and TensorFlow (weight initialization, dropout,
    stochastic depth) for the training stage of `iteration`; returns the stage's seed for its
    input pipelines."""
    seed = training_seed(ctx, iteration)
    if seed is not None:
        log.info("Seeding the training of iteration %d with %d (--seed=%d).", iteration, seed,
                 ctx.config.seed)
        keras.utils.set_random_seed(seed)
    return seed


def labeled_class_gaps(ctx: Context) -> dict:
    """{"classes_without_labeled_images": [...]} when some class has no labeled image (a
    warning, or an error with --strict_data), else {}. Checked with a given teacher too: the
    students train on the labeled data."""
    config = ctx.config
    if not config.label_data:
        return {}
    empty = pipelines.check_class_coverage(config.label_data, config.num_classes,
                                           config.label_offset, strict=config.strict_data,
                                           class_names=ctx.run_dir.class_names)
    return {"classes_without_labeled_images": empty} if empty else {}


def train_teacher(ctx: Context) -> dict:
    gaps = labeled_class_gaps(ctx)
    if ctx.config.teacher_checkpoint:
        return {"given": ctx.config.teacher_checkpoint, **evaluate(ctx, 0), **gaps}
    name = model_name(ctx, 0)
    size = image_size(ctx, name)
    seed = seed_training(ctx, 0)
    result = train(
        model_fn(ctx, 0),
        train_config(ctx, student=False),
        labeled_fn(ctx, size, ctx.config.teacher_randaug, seed, teacher=True),
        model_dir(ctx, 0),
        ctx.strategy,
        train_eval_data=clean_train_fn(ctx, size),
    )
    return {**_finish_training(ctx, 0, result), **gaps}


def train_student(ctx: Context, iteration: int) -> dict:
    config = ctx.config
    name = model_name(ctx, iteration)
    size = image_size(ctx, name)
    seed = seed_training(ctx, iteration)
    # The unlabeled stream gets a seed of its own (shuffle and augmentation).
    unlabeled_seed = None if seed is None else seed + 1
    teacher = load_model(ctx, iteration - 1)
    student_fn = model_fn(ctx, iteration)
    if config.student_init == "teacher":
        student_fn = initialized_from(student_fn, teacher)
    elif config.student_init == "grow":
        student_fn = grown_from(student_fn, teacher, seed or 0, config.grow_noise)
    if not config.on_the_fly_teacher:  # with a teacher in the step, the trainer checks
        check_student_size(student_fn(), teacher, config.allow_smaller_student)
    if config.on_the_fly_teacher:
        teacher_size = image_size(ctx, model_name(ctx, iteration - 1))
        unlabeled = on_the_fly_fn(ctx, size, teacher_size, unlabeled_seed)
        teacher_arg = teacher
    else:
        unlabeled = pseudo_fn(ctx, filtered_pattern(ctx, iteration), size, unlabeled_seed)
        teacher_arg = None
    result = train(
        student_fn,
        train_config(ctx, student=True),
        labeled_fn(ctx, size, randaug=True, seed=seed),
        model_dir(ctx, iteration),
        ctx.strategy,
        unlabeled_data=unlabeled,
        teacher=teacher_arg,
        train_eval_data=clean_train_fn(ctx, size),
    )
    return _finish_training(ctx, iteration, result)


def _finish_training(ctx: Context, iteration: int, result) -> dict:
    path = os.path.join(model_dir(ctx, iteration), layout.FINAL_MODEL)
    if ctx.chief:
        save_model(result.model, path)
    summary = {"model": model_name(ctx, iteration), "steps": result.step}
    if result.train_seconds is not None:
        summary["train_seconds"] = round(result.train_seconds, 1)
    if result.start_step:  # "seconds" (the loop's) covers the last sitting only
        summary["resumed_from_step"] = result.start_step
    summary.update({f"train_{k}": round(v, 4) for k, v in result.metrics.items()})
    if result.clean_train_metrics:
        summary["clean_train_top1"] = round(result.clean_train_metrics["top1"], 4)
    return summary


def label(ctx: Context, iteration: int) -> dict:
    """Labels this worker's share of the unlabeled shards, then waits for the others'."""
    config = ctx.config
    name = model_name(ctx, iteration - 1)
    teacher = load_model(ctx, iteration - 1)
    output_dir = ctx.run_dir.path(layout.labels_dir(iteration))
    labeling.label_shards(
        teacher,
        config.unlabel_data,
        output_dir,
        image_size=image_size(ctx, name),
        small_images=config.small_images,
        batch_size=config.eval_batch_size,
        # Stored labels stay soft even for hard-label training: filtering ranks by
        # confidence, and the student's pipeline takes the argmax (hard=True).
        temperature=config.soft_label_temperature,
        from_logits=True,
        worker_index=config.worker_index,
        num_workers=config.num_workers,
        storage=config.pseudo_label_storage,
        top_k=config.pseudo_label_topk,
        strict=config.strict_data,
        flip_average=config.teacher_flip_average,
    )
    wait_for(
        "the other workers' pseudo-label shards",
        lambda: not labeling.unfinished_shards(config.unlabel_data, output_dir),
        config.wait_timeout,
    )
    totals = labeling.label_totals(config.unlabel_data, output_dir)  # all workers, all runs
    if totals["num_labeled"] == 0:  # the cause, before filtering blames the teacher
        raise RunError(labeling.nothing_labeled_message(config.unlabel_data, output_dir))
    return totals


def filtered_pattern(ctx: Context, iteration: int) -> str:
    folder = ctx.run_dir.path(layout.filtered_dir(iteration))
    return os.path.join(folder, f"{filtering.OUTPUT_SPLIT}-*")


def filter_stage(ctx: Context, iteration: int) -> dict:
    """Keeps the confident pseudo labels, balanced per class: every worker filters its share
    of the shards in one pass (the chief plans and merges)."""
    config = ctx.config
    labels_pattern = labeling.pseudo_label_pattern(
        ctx.run_dir.path(layout.labels_dir(iteration)))
    output_dir = ctx.run_dir.path(layout.filtered_dir(iteration))
    stats = filtering.filter_and_balance(
        labels_pattern,
        output_dir,
        num_classes=config.num_classes,
        num_image_per_class=config.num_image_per_class,  # None: labeled images / classes
        min_threshold=config.min_threshold,
        use_all=not config.balance_classes,
        num_output_shards=config.filter_output_shards,
        class_names=ctx.run_dir.class_names,
        strict=config.strict_data,
        worker_index=config.worker_index,
        num_workers=config.num_workers,
        wait_timeout=config.wait_timeout,
    )
    if stats["num_written"] == 0:
        raise RuntimeError(
            f"No pseudo-labeled image of iteration {iteration} reached --min_threshold="
            f"{config.min_threshold} (see {stats.get('histogram')} in {output_dir}). Train "
            "the teacher longer or lower --min_threshold, delete that directory and rerun."
        )
    result = {key: stats[key] for key in ("num_input_records", "num_kept", "num_written")}
    return {**result, "data_damaged_files": stats.get("damaged_files", {})}


def evaluate(ctx: Context, iteration: int) -> dict:
    """Top-1/top-5 of an iteration's model on --eval_data ({} without it)."""
    if not ctx.config.eval_data:
        return {}
    name = model_name(ctx, iteration)
    model = load_model(ctx, iteration)
    metrics = classification.evaluate(model, eval_dataset(ctx, image_size(ctx, name)))
    return {key: metrics[key] for key in ("top1", "top5", "num_examples")}


def export_model(ctx: Context, iteration: int | None = None) -> dict:
    """SavedModel of the last student (--export_dir, else export/ in the run directory)."""
    iteration = ctx.config.num_iterations if iteration is None else iteration
    name = model_name(ctx, iteration)
    export_dir = ctx.config.export_dir or ctx.run_dir.path(layout.EXPORT_DIR)
    saved_model.export_saved_model(
        load_model(ctx, iteration),
        export_dir,
        image_size=image_size(ctx, name),
        small_images=ctx.config.small_images,
    )
    return {"export_dir": export_dir, "model": name}


# Each kind of stage (run_layout) and its function (context, iteration) -> result.
STAGE_FUNCTIONS: dict[str, Callable[[Context, int | None], dict]] = {
    layout.TRAIN: train_model,
    layout.EVAL: evaluate,
    layout.LABEL: label,
    layout.FILTER: filter_stage,
    layout.EXPORT: export_model,
}
