"""The training loop on tiny models: one forward pass over the concatenated student batch, the
loss formula (REFERENCE §1.6) against a NumPy computation, on-the-fly teachers, evaluation with
EMA weights, TensorBoard scalars, EMA-model loading and atomic export."""

import os

import numpy as np
import pytest
from tiny_models import make_model_fn


@pytest.fixture(scope="module")
def training(tf, keras):
    import noisy_student.training as training

    return training


def synthetic(count, seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (count, 32, 32, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, count)]
    return images, labels


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def mean_ce(targets, logits):
    return float(np.mean(-(targets * log_softmax(logits)).sum(-1)))


def numpy_weight_decay(model, rate):
    """1e-5 * sum 0.5 * ||w||^2 over trainable weights that are not BN gamma/beta."""
    kept = [w for w in model.trainable_weights if not w.path.endswith(("gamma", "beta"))]
    return rate * sum(0.5 * float(np.sum(np.square(w.numpy()))) for w in kept)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_student_step_one_forward_pass_and_loss(training, tf, keras, tmp_path, jit_compile):
    batch, ratio = 8, 1.5
    unlabeled_batch = 12  # ceil(1.5 * 8)
    images, labels = synthetic(batch, 1)
    unlabeled, _ = synthetic(unlabeled_batch, 2)
    rng = np.random.default_rng(3)
    targets = rng.dirichlet(np.ones(10), unlabeled_batch).astype("float32")
    labeled_ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
    unlabeled_ds = tf.data.Dataset.from_tensors((unlabeled, targets)).repeat()
    config = training.TrainConfig(
        batch_size=batch,
        num_train_examples=80,
        train_steps=1,
        unlabel_ratio=ratio,
        jit_compile=jit_compile,  # XLA is the default on a GPU
        quiet=True,
    )
    model_fn = make_model_fn(keras)

    # Independent forward pass with the same initial weights.
    reference = model_fn()
    both = np.concatenate([images, unlabeled])
    stem = keras.Model(reference.input, reference.get_layer("stem_conv").output)
    conv = stem(both).numpy()
    logits = reference(both, training=True).numpy()
    want_labeled = mean_ce(labels * 0.9 + 0.01, logits[:batch])
    want_unlabeled = mean_ce(targets, logits[batch:])  # soft targets: no smoothing
    want_decay = numpy_weight_decay(reference, 1e-5)

    result = training.train(
        model_fn, config, labeled_ds, str(tmp_path), unlabeled_data=unlabeled_ds
    )
    metrics = result.metrics
    assert metrics["labeled_loss"] == pytest.approx(want_labeled, rel=1e-4)
    assert metrics["unlabeled_loss"] == pytest.approx(want_unlabeled, rel=1e-4)
    assert metrics["weight_decay"] == pytest.approx(want_decay, rel=1e-4)
    assert metrics["loss"] == pytest.approx(
        want_labeled + ratio * want_unlabeled + want_decay, rel=1e-4
    )

    # BN statistics span the concatenated batch: after one step the raw moving mean is
    # 0.01 * mean(conv over all 20 images); the returned model holds its EMA,
    # (1 - min(0.9999, 2/11)) * that.
    ema_factor = 1 - 2 / 11
    moving_mean = result.model.get_layer("stem_bn").moving_mean.numpy()
    np.testing.assert_allclose(
        moving_mean, ema_factor * 0.01 * conv.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6
    )
    separate = 0.01 * conv[batch:].mean(axis=(0, 1, 2)) + 0.0099 * conv[:batch].mean((0, 1, 2))
    assert not np.allclose(moving_mean, ema_factor * separate, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("mode", ["hard_separate_input", "soft_same_input", "soft_flip_average"])
def test_on_the_fly_teacher_targets(training, tf, keras, tmp_path, mode):
    batch, ratio = 4, 2.0
    images, labels = synthetic(batch, 4)
    unlabeled, _ = synthetic(8, 5)
    teacher_view = unlabeled[:, ::-1]  # the teacher's own (here: flipped) input
    hard = mode.startswith("hard")
    if hard:
        unlabeled_ds = tf.data.Dataset.from_tensors((unlabeled, teacher_view)).repeat()
    else:
        unlabeled_ds = tf.data.Dataset.from_tensors(unlabeled).repeat()
    config = training.TrainConfig(
        batch_size=batch,
        num_train_examples=40,
        train_steps=1,
        unlabel_ratio=ratio,
        hard_pseudo_labels=hard,
        teacher_temperature=2.0,
        teacher_same_input=not hard,
        teacher_flip_average=mode == "soft_flip_average",
        quiet=True,
    )
    teacher_fn = make_model_fn(keras, seed=7)
    teacher = teacher_fn()
    if mode == "soft_flip_average":  # sharper logits, so that the two views' labels differ
        kernel, bias = teacher.get_layer("predictions").get_weights()
        teacher.get_layer("predictions").set_weights([kernel * 20, bias])
    teacher_logits = teacher(teacher_view if hard else unlabeled, training=False).numpy()
    if hard:
        targets = np.eye(10)[teacher_logits.argmax(-1)] * 0.9 + 0.01
    else:
        targets = np.exp(log_softmax(teacher_logits / 2.0))
    if mode == "soft_flip_average":  # the mean over each image and its horizontal mirror
        mirrored = teacher(unlabeled[:, :, ::-1], training=False).numpy()
        assert not np.allclose(targets, np.exp(log_softmax(mirrored / 2.0)), atol=1e-2)
        targets = (targets + np.exp(log_softmax(mirrored / 2.0))) / 2
    student_fn = make_model_fn(keras)
    logits = student_fn()(np.concatenate([images, unlabeled]), training=True).numpy()
    result = training.train(
        student_fn,
        config,
        tf.data.Dataset.from_tensors((images, labels)).repeat(),
        str(tmp_path),
        unlabeled_data=unlabeled_ds,
        teacher=teacher_fn if hard else teacher,
    )
    assert result.metrics["unlabeled_loss"] == pytest.approx(
        mean_ce(targets, logits[batch:]), rel=1e-4
    )


def test_student_size_and_logits_checks(training, tf, keras, tmp_path):
    assert training.check_student_size(10, 10) == (10, 10)
    with pytest.raises(ValueError, match="allow_smaller_student"):
        training.check_student_size(9, 10)
    assert training.check_student_size(9, 10, allow_smaller_student=True) == (9, 10)
    config = training.TrainConfig(
        batch_size=4, num_train_examples=8, train_steps=1, unlabel_ratio=1.0, quiet=True
    )
    strategy = tf.distribute.get_strategy()
    bigger_teacher = make_model_fn(keras, width_coefficient=0.5)
    with pytest.raises(ValueError, match="fewer than the teacher"):
        training.Trainer(make_model_fn(keras), config, str(tmp_path), strategy, bigger_teacher)
    softmax_teacher = make_model_fn(keras, classifier_activation="softmax")
    with pytest.raises(ValueError, match="classifier_activation=None"):
        training.Trainer(make_model_fn(keras), config, str(tmp_path), strategy, softmax_teacher)
    with pytest.raises(ValueError, match="exactly one of train_steps and train_epochs"):
        training.TrainConfig(batch_size=4, num_train_examples=8)
    epochs = training.TrainConfig(batch_size=4, num_train_examples=10, train_epochs=3)
    assert epochs.total_steps == 7 and epochs.steps_per_epoch == 2.5  # int(3 * 10 / 4)
    ratio = training.TrainConfig(
        batch_size=30, num_train_examples=30, train_steps=1, unlabel_ratio=0.1
    )
    assert ratio.unlabeled_batch_size == 3  # ceil(0.1 * 30), despite 0.1 * 30 = 3.0000000000000004


def test_eval_summaries_ema_loading_and_export(training, tf, keras, tmp_path):
    images, labels = synthetic(64, 6)
    eval_images, eval_labels = synthetic(40, 7)

    def labeled_fn(batch_size, context):
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
        return dataset.batch(batch_size, drop_remainder=True)

    def eval_fn(batch_size, context):  # 40 images in batches of 16: a partial last batch
        return tf.data.Dataset.from_tensor_slices((eval_images, eval_labels)).batch(batch_size)

    config = training.TrainConfig(
        batch_size=8,
        num_train_examples=64,
        train_steps=4,
        checkpoint_every=2,
        summary_every=2,
        eval_every=2,
        eval_batch_size=16,
        steps_per_loop=4,  # cut to 2 by the checkpoint/summary/eval boundaries
        quiet=True,
    )
    model_dir = str(tmp_path / "run")
    model_fn = make_model_fn(keras)
    result = training.train(model_fn, config, labeled_fn, model_dir, eval_data=eval_fn)

    logits = result.model.predict(eval_images, verbose=0)
    top1 = float(np.mean(logits.argmax(-1) == eval_labels.argmax(-1)))
    assert result.eval_metrics == {"top1": pytest.approx(top1), "num_examples": 40}

    from noisy_student.training.summaries import read_scalars

    scalars = read_scalars(os.path.join(model_dir, "train"))
    assert [step for step, _ in scalars["train/loss"]] == [2, 4]
    # peak 0.016 * 8 / 256 = 5e-4, warm-up 5 epochs * 8 steps = 40 steps; step 4 used lr(3).
    assert scalars["train/learning_rate"][-1][1] == pytest.approx(5e-4 * 3 / 40, rel=1e-5)
    assert scalars["train/ema_decay"][-1][1] == pytest.approx(5 / 14, rel=1e-6)
    assert scalars["train/epoch"][-1][1] == pytest.approx(0.5)
    eval_scalars = read_scalars(os.path.join(model_dir, "eval"))
    assert [step for step, _ in eval_scalars["eval/top1"]] == [2, 4]
    assert eval_scalars["eval/top1"][-1][1] == pytest.approx(top1)
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")

    # The EMA model loads into a softmax-ended builder for labeling.
    labeler = training.load_ema_model(
        model_dir, make_model_fn(keras, classifier_activation="softmax")
    )
    probabilities = labeler.predict(eval_images, verbose=0)
    np.testing.assert_allclose(probabilities, np.exp(log_softmax(logits)), rtol=1e-4, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        training.load_ema_model(str(tmp_path / "empty"), model_fn)

    export = tmp_path / "export"
    training.save_model(result.model, str(export / "model.keras"))
    training.save_model(result.model, str(export / "model.weights.h5"))
    assert sorted(os.listdir(export)) == ["model.keras", "model.weights.h5"]
    reloaded = keras.models.load_model(export / "model.keras")
    np.testing.assert_allclose(
        reloaded.predict(eval_images, verbose=0), logits, rtol=1e-5, atol=1e-5
    )
    fresh = model_fn()
    fresh.load_weights(export / "model.weights.h5")
    np.testing.assert_allclose(fresh.predict(eval_images, verbose=0), logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="must end with"):
        training.save_model(result.model, str(export / "model.h5"))


def test_bad_inputs_give_clear_errors(training, tf, keras, tmp_path):
    images, labels = synthetic(4, 8)
    strategy = tf.distribute.get_strategy()
    student = training.TrainConfig(
        batch_size=4, num_train_examples=8, train_steps=1, unlabel_ratio=1.0, quiet=True
    )
    trainer = training.Trainer(make_model_fn(keras), student, str(tmp_path / "a"), strategy)
    labeled = tf.data.Dataset.from_tensors((images, labels)).repeat()
    with pytest.raises(ValueError, match="needs unlabeled data"):
        trainer.fit(labeled)
    config = training.TrainConfig(batch_size=4, num_train_examples=8, train_steps=1, quiet=True)
    wrong_classes = tf.data.Dataset.from_tensors((images, labels[:, :5])).repeat()
    with pytest.raises(ValueError, match="5 classes but the model outputs 10"):
        training.train(make_model_fn(keras), config, wrong_classes, str(tmp_path / "b"))


def test_training_time_adds_up_over_sittings(training, tf, keras, tmp_path):
    """A resumed training reports the seconds of all its sittings: each checkpoint save records
    (step, seconds so far) and a resume from that step goes on from there; a record of another
    step (a sitting killed between its checkpoint and the record) leaves the time unknown."""
    import json

    from noisy_student.training.checkpoints import TRAIN_TIME_FILE, TrainingClock

    images, labels = synthetic(32, 8)

    def labeled_fn(batch_size, context):
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
        return dataset.batch(batch_size, drop_remainder=True)

    def config(steps):
        return training.TrainConfig(batch_size=8, num_train_examples=32, train_steps=steps,
                                    checkpoint_every=2, summary_every=2, quiet=True)

    model_dir = str(tmp_path / "run")
    record = os.path.join(model_dir, TRAIN_TIME_FILE)
    first = training.train(make_model_fn(keras), config(2), labeled_fn, model_dir)
    with open(record) as f:
        assert json.load(f) == {"step": 2, "seconds": pytest.approx(first.train_seconds, abs=0.2)}
    with open(record, "w") as f:  # as if the first sitting had taken 1,000 s
        json.dump({"step": 2, "seconds": 1000.0}, f)
    second = training.train(make_model_fn(keras), config(4), labeled_fn, model_dir)
    assert second.start_step == 2 and 1000 < second.train_seconds < 1600
    with open(record) as f:
        assert json.load(f)["step"] == 4
    with open(record, "w") as f:
        json.dump({"step": 3, "seconds": 1000.0}, f)
    assert TrainingClock(model_dir, start_step=4).seconds() is None
    assert TrainingClock(model_dir, start_step=0).seconds() < 600  # a fresh start ignores it
