"""The training loop: supervised teacher training and Noisy Student training.

One custom loop: a per-replica step (forward on the concatenated labeled + unlabeled batch,
loss, RMSProp update, EMA update) run with `strategy.run` inside a tf.function that does
`steps_per_loop` steps; the Python side checks the loss, writes summaries, shows progress,
checkpoints and evaluates.

Datasets are given as either
  * a function `fn(per_replica_batch_size, input_context) -> tf.data.Dataset` of per-replica
    batches (use `input_context` to shard; works with every strategy), or
  * a `tf.data.Dataset` of global batches (single host only).
Labeled elements are `(images, one_hot_labels)`. Unlabeled elements are `(images, targets)`
with stored pseudo labels; with an on-the-fly teacher they are `(student_images,
teacher_images)`, or just `images` when `config.teacher_same_input`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from noisy_student.atomic_io import write_json_atomic
from noisy_student.targets import inference_teacher, teacher_labels
from noisy_student.training.checkpoints import Checkpointer, TrainingClock
from noisy_student.training.checks import (
    check_student_size,
    check_target_classes,
    require_logits,
)
from noisy_student.training.config import TrainConfig
from noisy_student.training.ema import ExponentialMovingAverage, ema_decay
from noisy_student.training.losses import (
    batch_norm_layers,
    cross_entropy_sum,
    l2_penalty,
    smooth_labels,
    weight_decay_variables,
)
from noisy_student.training.metrics import (
    METRICS,
    STUDENT_ONLY_METRICS,
    EpochAverage,
    count_equal_argmax,
)
from noisy_student.training.optimizer import make_optimizer, uses_loss_weight_decay
from noisy_student.training.precision import precision_policy, resolve_jit_compile, wrap_optimizer
from noisy_student.training.schedules import learning_rate_schedule, note_if_not_annealed
from noisy_student.training.strategy import DataSource, distribute, is_chief
from noisy_student.training.summaries import write_scalars

log = logging.getLogger(__name__)

class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/Inf loss or weights; nothing after the last good checkpoint was
    saved."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


@dataclasses.dataclass
class TrainResult:
    model: keras.Model  # holds the EMA weights
    step: int  # final step
    start_step: int  # step restored from model_dir (0 for a fresh run)
    metrics: dict[str, float]  # training metrics averaged over the last epoch
    eval_metrics: dict[str, float] | None
    clean_train_metrics: dict[str, float] | None = None  # EMA, eval preprocessing
    # Seconds from the first step to the last over every sitting (evaluation excluded); None
    # when an earlier sitting's time is unknown (see checkpoints.TrainingClock).
    train_seconds: float | None = None


def train(
    model_fn: Callable[[], keras.Model],
    config: TrainConfig,
    labeled_data: DataSource,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    unlabeled_data: DataSource | None = None,
    eval_data: DataSource | None = None,
    teacher: keras.Model | Callable[[], keras.Model] | None = None,
    train_eval_data: DataSource | None = None,
) -> TrainResult:
    """Trains (or resumes training of) `model_fn()` in model_dir and returns the EMA model.

    `train_eval_data` (labeled training images with eval preprocessing, e.g. a fixed subset) is
    scored like `eval_data` at the end, so that under- and over-fitting show on equal terms for
    teachers and noised students.

    `model_fn` must build a model that outputs logits (classifier_activation=None); under a
    multi-replica strategy build it with sync_batch_norm=True. `teacher` (a model or a function
    building one; built inside the strategy scope when a function) labels the unlabeled batch
    on the fly; it must output logits too. Raises NonFiniteLossError on NaN/Inf.
    """
    strategy = strategy or tf.distribute.get_strategy()
    trainer = Trainer(model_fn, config, model_dir, strategy, teacher)
    return trainer.fit(labeled_data, unlabeled_data, eval_data, train_eval_data)


class Trainer:
    """State of one training run; use `train()` unless you need the pieces."""

    def __init__(
        self,
        model_fn: Callable[[], keras.Model],
        config: TrainConfig,
        model_dir: str,
        strategy: tf.distribute.Strategy,
        teacher: keras.Model | Callable[[], keras.Model] | None = None,
    ):
        self.config = config
        self.model_dir = model_dir
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self._check_batches()
        if teacher is not None and not config.is_student:
            raise ValueError("A teacher was given but unlabel_ratio is 0; set unlabel_ratio > 0.")
        self.schedule = learning_rate_schedule(config)
        note_if_not_annealed(self.schedule)
        # Models are built under config.precision's dtype policy (restored afterwards).
        with precision_policy(config.precision), strategy.scope():
            self.model = model_fn()
            self.teacher = self._build_teacher(teacher)
            self.optimizer = wrap_optimizer(
                make_optimizer(
                    config.optimizer,
                    self.schedule,
                    rmsprop_decay=config.rmsprop_decay,
                    momentum=config.rmsprop_momentum,
                    epsilon=config.rmsprop_epsilon,
                    weight_decay=config.weight_decay,
                    no_decay_variables=_without(
                        self.model.trainable_variables, weight_decay_variables(self.model)
                    ),
                ),
                config.precision,
            )
            self.optimizer.build(self.model.trainable_variables)
            self.ema = ExponentialMovingAverage(self.model, config.moving_average_decay)
            self.step = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="global_step",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        require_logits(self.model, "student" if config.is_student else "model")
        self._warn_unsynchronized_batch_norm()
        self.decayed_variables = (
            weight_decay_variables(self.model) if uses_loss_weight_decay(config.optimizer) else []
        )
        self.checkpointer = Checkpointer(
            model_dir,
            strategy,
            keep=config.keep_checkpoints,
            model=self.model,
            optimizer=self.optimizer,
            ema=self.ema.checkpointable,
            step=self.step,
        )
        self.chief = is_chief(strategy)
        # No autograph inside the step: it has no tensor-dependent Python control flow, and
        # converting the whole Keras call tree costs seconds of tracing.
        step_fn = tf.autograph.experimental.do_not_convert(self._replica_step)
        if resolve_jit_compile(config.jit_compile, strategy):
            step_fn = tf.function(step_fn, jit_compile=True)
        self._train_loop = self._make_train_loop(step_fn)
        self._eval_step = tf.function(
            tf.autograph.experimental.do_not_convert(self._eval_replica_sums),
            reduce_retracing=True,
        )
        self._eval_writer = None

    # ----------------------------------------------------------------------------- setup
    def _check_batches(self) -> None:
        batches = {"batch_size": self.config.batch_size}
        if self.config.is_student:
            batches["unlabeled batch (ceil(unlabel_ratio * batch_size))"] = (
                self.config.unlabeled_batch_size
            )
        for name, size in batches.items():
            if size % self.num_replicas:
                raise ValueError(
                    f"The global {name} {size} does not split over {self.num_replicas} replicas; "
                    "use a multiple of the replica count."
                )

    def _build_teacher(self, teacher) -> keras.Model | None:
        if teacher is None:
            return None
        if not isinstance(teacher, keras.Model):
            teacher = teacher()
        teacher.trainable = False
        require_logits(teacher, "teacher")
        check_student_size(self.model, teacher, self.config.allow_smaller_student)
        return inference_teacher(teacher)

    def _warn_unsynchronized_batch_norm(self) -> None:
        if self.num_replicas > 1 and any(
            not layer.synchronized for layer in batch_norm_layers(self.model)
        ):
            log.warning(
                "Training on %d replicas with per-replica batch-norm statistics; build the model "
                "with sync_batch_norm=True for cross-replica batch norm.",
                self.num_replicas,
            )

    # ------------------------------------------------------------------------- the step
    def _unlabeled_inputs(self, unlabeled):
        """(student images, float32 targets) for the unlabeled part of the batch."""
        config = self.config
        if self.teacher is None:
            images, targets = unlabeled
            return images, tf.cast(targets, tf.float32)
        if config.teacher_same_input:
            student_images = teacher_images = unlabeled
        else:
            student_images, teacher_images = unlabeled
        targets = teacher_labels(self.teacher, teacher_images, config.teacher_temperature,
                                 config.hard_pseudo_labels,
                                 flip_average=config.teacher_flip_average)
        return student_images, targets

    def _replica_step(self, batch) -> dict[str, tf.Tensor]:
        """One step on this replica's share. Loss terms are divided by the GLOBAL batch sizes
        (and weight decay by the replica count), so the all-reduced gradient sum is exact."""
        config = self.config
        if config.is_student:
            (images, labels), unlabeled = batch
            unlabeled_images, targets = self._unlabeled_inputs(unlabeled)
            if config.hard_pseudo_labels:
                targets = smooth_labels(targets, config.label_smoothing)
            inputs = tf.concat([images, tf.cast(unlabeled_images, images.dtype)], axis=0)
        else:
            images, labels = batch
            inputs = images
        labels = tf.cast(labels, tf.float32)
        num_labeled = images.shape[0] or tf.shape(images)[0]  # static where known (TPU)
        with tf.GradientTape() as tape:
            logits = tf.cast(self.model(inputs, training=True), tf.float32)
            check_target_classes(labels, logits, "labels")
            if config.is_student:
                check_target_classes(targets, logits, "unlabeled targets")
            labeled_logits = logits[:num_labeled]
            labeled_loss = (
                cross_entropy_sum(smooth_labels(labels, config.label_smoothing), labeled_logits)
                / config.batch_size
            )
            unlabeled_loss = agreement = tf.constant(0.0)
            if config.is_student:
                unlabeled_logits = logits[num_labeled:]
                unlabeled_loss = (
                    cross_entropy_sum(targets, unlabeled_logits) / config.unlabeled_batch_size
                )
                agreement = count_equal_argmax(unlabeled_logits, targets) / (
                    config.unlabeled_batch_size
                )
            decay = config.weight_decay * l2_penalty(self.decayed_variables) / self.num_replicas
            loss = labeled_loss + config.unlabel_ratio * unlabeled_loss + decay
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.step.assign_add(1)
        self.ema.update(self.step.read_value())
        accuracy = count_equal_argmax(labeled_logits, labels) / config.batch_size
        values = (loss, labeled_loss, unlabeled_loss, decay, accuracy, agreement)
        return dict(zip(METRICS, values, strict=True))

    def _make_train_loop(self, step_fn):
        strategy = self.strategy

        @tf.function
        def train_loop(iterator, num_steps):
            totals = tuple(tf.constant(0.0) for _ in METRICS)
            for _ in tf.range(num_steps):
                per_replica = strategy.run(step_fn, args=(iterator.get_next(),))
                totals = tuple(
                    total + strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[name], None)
                    for total, name in zip(totals, METRICS, strict=True)
                )
            count = tf.cast(num_steps, tf.float32)
            return {name: total / count for name, total in zip(METRICS, totals, strict=True)}

        return train_loop

    # ---------------------------------------------------------------------------- loop
    def fit(
        self,
        labeled_data: DataSource,
        unlabeled_data: DataSource | None = None,
        eval_data: DataSource | None = None,
        train_eval_data: DataSource | None = None,
    ) -> TrainResult:
        config = self.config
        if config.is_student and unlabeled_data is None:
            raise ValueError("unlabel_ratio > 0 needs unlabeled data (unlabeled_data=...).")
        if unlabeled_data is not None and not config.is_student:
            raise ValueError("Unlabeled data was given but unlabel_ratio is 0.")
        restored = self.checkpointer.restore_latest()
        start_step = int(self.step.numpy())
        total = config.total_steps
        if restored:
            log.info("Resuming from %s at step %d of %d.", restored, start_step, total)
        clock = TrainingClock(self.model_dir, start_step, self.chief)
        if self.chief:
            tf.io.gfile.makedirs(self.model_dir)
            write_json_atomic(
                os.path.join(self.model_dir, "train_config.json"), dataclasses.asdict(config)
            )

        sources = [labeled_data] + ([unlabeled_data] if config.is_student else [])
        batches = [config.batch_size] + ([config.unlabeled_batch_size] if config.is_student else [])
        iterator = iter(distribute(self.strategy, sources, batches))
        writer = self._summary_writer("train")
        progress = None
        if not config.quiet:
            progress = keras.utils.Progbar(total, stateful_metrics=METRICS + ("lr",))
            progress.update(start_step)

        step, eval_metrics = start_step, None
        epoch = EpochAverage(self._metric_names())
        while step < total:
            num_steps = self._steps_in_next_loop(step)
            outputs = self._train_loop(iterator, tf.constant(num_steps, tf.int64))
            metrics = {name: float(value) for name, value in outputs.items()}
            step += num_steps
            if not math.isfinite(metrics["loss"]):
                raise self._non_finite(step, num_steps, f"loss {metrics['loss']}")
            metrics["lr"] = float(self.schedule(step - 1))
            epoch.add(metrics, num_steps)
            if step % config.summary_every == 0 or step == total:
                self._write_train_summaries(writer, step, metrics)
            if self._epoch_ends(step) or step == total:
                write_scalars(
                    writer, step, {f"epoch/{k}": v for k, v in epoch.close().items()}
                )
            if progress is not None:
                progress.update(step, [(k, metrics[k]) for k in self._metric_names() + ("lr",)])
            if step % config.checkpoint_every == 0 or step == total:
                self._save(step)
                clock.record(step)
            if eval_data is not None and config.eval_every and step % config.eval_every == 0:
                if step < total:
                    self._log_eval(self.evaluate(eval_data), step)
        train_seconds = clock.seconds()
        if eval_data is not None:
            eval_metrics = self.evaluate(eval_data)
            self._log_eval(eval_metrics, step)
        clean_train_metrics = None
        if train_eval_data is not None:
            clean_train_metrics = self.evaluate(train_eval_data)
            self._log_eval(clean_train_metrics, step, "clean_train")
        self.ema.copy_to_model()
        metrics = {**epoch.last, "lr": float(self.schedule(max(step - 1, 0)))}
        return TrainResult(
            self.model, step, start_step, metrics, eval_metrics, clean_train_metrics,
            train_seconds
        )

    def _metric_names(self) -> tuple[str, ...]:
        if self.config.is_student:
            return METRICS
        return tuple(name for name in METRICS if name not in STUDENT_ONLY_METRICS)

    def _epoch_ends(self, step: int) -> bool:
        """True when `step` is the first step of a new epoch (epochs are a float of steps)."""
        per_epoch = self.config.steps_per_epoch
        return math.floor(step / per_epoch) > math.floor((step - 1) / per_epoch)

    def _steps_in_next_loop(self, step: int) -> int:
        """Up to steps_per_loop steps, stopping at the next checkpoint/summary/eval step and at
        the end of the epoch."""
        config = self.config
        periods = [config.checkpoint_every, config.summary_every]
        periods += [config.eval_every] if config.eval_every else []
        until_boundary = [period - step % period for period in periods]
        next_epoch = math.floor(step / config.steps_per_epoch) + 1
        until_boundary.append(max(1, math.ceil(next_epoch * config.steps_per_epoch) - step))
        return min([config.steps_per_loop, config.total_steps - step] + until_boundary)

    def _non_finite(self, step: int, num_steps: int, what: str) -> NonFiniteLossError:
        where = f"step {step}" if num_steps == 1 else f"steps {step - num_steps + 1}-{step}"
        kept = self.checkpointer.latest or "none yet"
        return NonFiniteLossError(
            step,
            f"Non-finite training {what} at {where}; stopped without saving. The last good "
            f"checkpoint is kept ({kept}). Lower the learning rate or check the input data.",
        )

    def _save(self, step: int) -> None:
        if not bool(self._all_finite()):
            raise self._non_finite(step, 1, "weights")
        path = self.checkpointer.save(step)
        log.info("Saved checkpoint %s.", path)

    @tf.function
    def _all_finite(self):
        values = [v.value for v in self.model.weights] + self.ema.shadows
        return tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in values if v.dtype.is_floating]
        )

    # ---------------------------------------------------------------------- evaluation
    def _eval_replica_sums(self, batch):
        def replica_fn(images, labels):
            logits = self.model(images, training=False)
            return count_equal_argmax(logits, labels), tf.cast(tf.shape(labels)[0], tf.float32)

        correct, count = self.strategy.run(replica_fn, args=batch)
        reduce = self.strategy.reduce
        return (
            reduce(tf.distribute.ReduceOp.SUM, correct, None),
            reduce(tf.distribute.ReduceOp.SUM, count, None),
        )

    def evaluate(self, eval_data: DataSource) -> dict[str, float]:
        """Top-1 of the EMA weights on one pass over `eval_data` (one-hot labels)."""
        dataset = distribute(self.strategy, [eval_data], [self.config.eval_batch_size])
        correct = count = 0.0
        with self.ema.swapped():
            for batch in dataset:
                batch_correct, batch_count = self._eval_step(batch)
                correct += float(batch_correct)
                count += float(batch_count)
        if count == 0:
            raise ValueError("The evaluation dataset is empty.")
        return {"top1": correct / count, "num_examples": count}

    # ------------------------------------------------------------------------- logging
    def _summary_writer(self, name: str):
        if not self.chief:
            return tf.summary.create_noop_writer()
        return tf.summary.create_file_writer(os.path.join(self.model_dir, name))

    def _write_train_summaries(self, writer, step: int, metrics: dict[str, float]) -> None:
        scalars = {f"train/{name}": metrics[name] for name in self._metric_names()}
        scalars["train/learning_rate"] = metrics["lr"]
        scalars["train/ema_decay"] = float(ema_decay(self.config.moving_average_decay, step))
        scalars["train/epoch"] = step / self.config.steps_per_epoch
        write_scalars(writer, step, scalars)

    def _log_eval(self, eval_metrics: dict[str, float], step: int, name: str = "eval") -> None:
        log.info(
            "Step %d: EMA top-1 %.4f on %d %s images.",
            step,
            eval_metrics["top1"],
            eval_metrics["num_examples"],
            name,
        )
        if self._eval_writer is None:
            self._eval_writer = self._summary_writer("eval")
        write_scalars(self._eval_writer, step, {f"{name}/top1": eval_metrics["top1"]})


def _without(variables: list, excluded: list) -> list:
    excluded_ids = {id(v) for v in excluded}
    return [v for v in variables if id(v) not in excluded_ids]
