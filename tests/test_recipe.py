"""Recipe pieces against independent NumPy / hand computations: TF1 RMSProp, the learning-rate
schedule, EMA, weight decay without batch norm, label smoothing and pseudo-label targets,
precision policies."""

import math

import numpy as np
import pytest
from tiny_models import make_model_fn


@pytest.fixture(scope="module")
def training(tf, keras):
    import noisy_student.training as training

    return training


def numpy_tf1_rmsprop(weights, grads_per_step, lrs, rho=0.9, momentum=0.9, eps=1e-3):
    """The TF1 ApplyRMSProp update, written from its documented formula."""
    w = [x.copy() for x in weights]
    ms = [np.ones_like(x) for x in weights]
    mom = [np.zeros_like(x) for x in weights]
    for grads, lr in zip(grads_per_step, lrs, strict=True):
        for i, g in enumerate(grads):
            ms[i] = rho * ms[i] + (1 - rho) * g * g
            mom[i] = momentum * mom[i] + lr * g / np.sqrt(ms[i] + eps)
            w[i] = w[i] - mom[i]
    return w


def test_rmsprop_matches_tf1_update(training, keras):
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(3, 4)).astype("float32"), rng.normal(size=(4,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in init] for _ in range(5)]
    lrs = [0.1, 0.05, 0.05, 0.2, 0.01]
    variables = [keras.Variable(w) for w in init]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0, 1, 2, 3], lrs)
    optimizer = training.TF1RMSprop(schedule)
    for step_grads in grads:
        optimizer.apply_gradients(zip(step_grads, variables, strict=True))
    expected = numpy_tf1_rmsprop(init, grads, lrs)
    for variable, want in zip(variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6)
    # Keras' own RMSprop starts the mean square at 0 and so takes a much larger first step.
    keras_vars = [keras.Variable(w) for w in init]
    keras.optimizers.RMSprop(0.1, rho=0.9, momentum=0.9, epsilon=1e-3).apply_gradients(
        zip(grads[0], keras_vars, strict=True)
    )
    first = numpy_tf1_rmsprop(init, grads[:1], lrs[:1])
    assert not np.allclose(keras_vars[0].numpy(), first[0], atol=1e-3)


def test_rmsprop_config_round_trip(training, keras):
    optimizer = training.TF1RMSprop(0.5, rho=0.8, momentum=0.7, epsilon=1e-4)
    clone = training.TF1RMSprop.from_config(optimizer.get_config())
    assert (clone.rho, clone.momentum, clone.epsilon) == (0.8, 0.7, 1e-4)


def test_schedule_hand_values(training, keras):
    # ImageNet at batch 4096: 312.78 steps/epoch, warm-up int(5 * 312.78) = 1563 steps,
    # staircase period 2.4 * 312.78 = 750.68 steps (a float, as TF1's exponential_decay:
    # floor(step / 750.68)), peak 0.016 * 4096 / 256 = 0.256.
    peak = training.scaled_learning_rate(0.016, 4096)
    assert peak == pytest.approx(0.256)
    schedule = training.WarmupDecaySchedule(peak, 1281167 / 4096)
    expected = {
        0: 0.0,
        1: 0.256 / 1563,
        1562: 0.256 * 1562 / 1563,
        1563: 0.256 * 0.97**2,  # the decay clock ran during warm-up
        2252: 0.256 * 0.97**2,  # 2252 / 750.68 = 2.9999
        2253: 0.256 * 0.97**3,
        109474: 0.256 * 0.97**145,
    }
    for step, want in expected.items():
        assert float(schedule(step)) == pytest.approx(want, rel=1e-5), step


def test_schedule_cosine_constant_and_serialization(training, keras):
    cosine = training.WarmupDecaySchedule(
        0.1, steps_per_epoch=10, decay="cosine", warmup_epochs=1, total_steps=100
    )
    assert float(cosine(5)) == pytest.approx(0.05)
    assert float(cosine(75)) == pytest.approx(0.05 * (1 + math.cos(0.75 * math.pi)), rel=1e-5)
    constant = training.WarmupDecaySchedule(0.1, steps_per_epoch=10, decay="constant")
    assert float(constant(49)) == pytest.approx(0.1 * 49 / 50)
    assert float(constant(5000)) == pytest.approx(0.1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cosine))
    assert float(restored(75)) == pytest.approx(float(cosine(75)))
    with pytest.raises(ValueError, match="Unknown learning-rate schedule"):
        training.WarmupDecaySchedule(0.1, 10, decay="linear")
    with pytest.raises(ValueError, match="total_steps"):
        training.WarmupDecaySchedule(0.1, 10, decay="cosine")


def small_bn_model(keras, bn_name=None):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(name=bn_name)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_ema_matches_numpy_and_covers_bn_statistics(training, tf, keras):
    keras.utils.set_random_seed(0)
    model = small_bn_model(keras)
    ema = training.ExponentialMovingAverage(model, decay=0.9)
    names = [v.path for v in ema.model_variables]
    assert any(n.endswith("moving_mean") for n in names)
    assert any(n.endswith("moving_variance") for n in names)
    assert len(names) == len(model.trainable_weights) + 2
    rng = np.random.default_rng(1)
    shadow = [v.numpy().copy() for v in ema.model_variables]
    for n in range(1, 40):
        for variable in ema.model_variables:
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
        ema.update(tf.constant(n, tf.int64))
        decay = min(0.9, (1 + n) / (10 + n))
        shadow = [
            decay * s + (1 - decay) * v.numpy()
            for s, v in zip(shadow, ema.model_variables, strict=True)
        ]
    for got, want in zip(ema.shadows, shadow, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)

    training_weights = [v.numpy().copy() for v in ema.model_variables]
    with ema.swapped():
        for variable, want in zip(ema.model_variables, shadow, strict=True):
            np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6)
    for variable, want in zip(ema.model_variables, training_weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), want)


def test_ema_update_inside_distributed_step_and_checkpoint(training, tf, keras, tmp_path):
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = small_bn_model(keras)
    ema = training.ExponentialMovingAverage(model)
    before = [v.numpy().copy() for v in ema.model_variables]
    for variable in ema.model_variables:
        variable.assign(variable + 1.0)

    @tf.function
    def step():
        strategy.run(lambda: ema.update(tf.constant(3, tf.int64)))

    step()
    decay = min(0.9999, 4 / 13)
    for shadow, old in zip(ema.shadows, before, strict=True):
        np.testing.assert_allclose(shadow.numpy(), old + (1 - decay), rtol=1e-6, atol=1e-6)
    path = tf.train.Checkpoint(ema=ema.checkpointable).write(str(tmp_path / "ema"))
    other = training.ExponentialMovingAverage(small_bn_model(keras))
    tf.train.Checkpoint(ema=other.checkpointable).read(path).assert_consumed()
    for got, want in zip(other.shadows, ema.shadows, strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def tiny_efficientnet(**overrides):
    from efficientnet_tf import create_model

    return create_model(
        "b0",
        width_coefficient=0.25,
        depth_coefficient=0.25,
        small_images=True,
        input_shape=(32, 32, 3),
        classes=10,
        classifier_activation=None,
        **overrides,
    )


def test_weight_decay_excludes_batch_norm(training, keras):
    # Reference rule on reference-style names: drop variables whose name has
    # 'batch_normalization' (Keras' default BatchNormalization name).
    model = small_bn_model(keras)
    by_name = [w.path for w in model.trainable_weights if "batch_normalization" not in w.path]
    assert [w.path for w in training.weight_decay_variables(model)] == by_name
    # A renamed BN layer is still recognised by its type.
    renamed = small_bn_model(keras, bn_name="norm")
    paths = [w.path for w in training.weight_decay_variables(renamed)]
    assert not any(p.startswith("norm/") for p in paths) and len(paths) == 3
    # EfficientNet: exactly the gamma/beta of every BN layer are left out.
    net = tiny_efficientnet()
    kept = training.weight_decay_variables(net)
    bn_params = [w for w in net.trainable_weights if w.path.rsplit("/", 1)[-1] in ("gamma", "beta")]
    assert len(bn_params) > 20
    assert len(kept) == len(net.trainable_weights) - len(bn_params)
    assert not {id(w) for w in kept} & {id(w) for w in bn_params}
    want = sum(0.5 * float(np.sum(np.square(w.numpy()))) for w in kept)
    assert float(training.l2_penalty(kept)) == pytest.approx(want, rel=1e-5)


def test_label_smoothing_and_targets(training, tf, keras):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 10)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 6)]
    smoothed = training.smooth_labels(tf.constant(labels), 0.1).numpy()
    np.testing.assert_allclose(smoothed, labels * 0.9 + 0.01, rtol=1e-6)
    ce = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction="sum"
    )
    got = training.cross_entropy_sum(tf.constant(smoothed), tf.constant(logits))
    assert float(got) == pytest.approx(float(ce(labels, logits)), rel=1e-5)

    soft = training.teacher_targets(tf.constant(logits), temperature=2.0).numpy()
    scaled = np.exp(logits / 2 - (logits / 2).max(-1, keepdims=True))
    np.testing.assert_allclose(soft, scaled / scaled.sum(-1, keepdims=True), rtol=1e-5)
    hard = training.teacher_targets(tf.constant(logits), hard=True).numpy()
    np.testing.assert_array_equal(hard, np.eye(10)[logits.argmax(-1)])


def test_jit_default_off_on_cpu(training, tf):
    import types

    strategy = tf.distribute.get_strategy()
    assert training.resolve_jit_compile(None, strategy) is False
    assert training.resolve_jit_compile(True, strategy) is True
    two_replicas = types.SimpleNamespace(num_replicas_in_sync=2)
    assert training.resolve_jit_compile(None, two_replicas) is False
    with pytest.raises(ValueError, match="not supported with a multi-replica"):
        training.resolve_jit_compile(True, two_replicas)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training(training, tf, keras, tmp_path, precision):
    model_fn = make_model_fn(keras)

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 8)]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(8)
    config = training.TrainConfig(
        batch_size=8, num_train_examples=8, train_steps=2, precision=precision, quiet=True
    )
    trainer = training.Trainer(model_fn, config, str(tmp_path), tf.distribute.get_strategy())
    assert keras.config.dtype_policy().name == "float32"  # the policy did not leak
    result = trainer.fit(data)
    assert trainer.model.layers[-1].compute_dtype == precision.split("_")[1]
    assert all(w.dtype == "float32" for w in trainer.model.weights if "moving" in w.path)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    assert math.isfinite(result.metrics["loss"]) and result.step == 2


def test_final_base_lr_reproduces_the_reference_svhn_schedule(training):
    # Reference SVHN (local_scripts/svhn/run.sh + main.py): 69,257 labeled images, batch 128,
    # train_steps 109474, base 0.016 and final_base_lr 2e-4 per 256 images, 5 warm-up epochs.
    # main.py: total_epochs = 109474 * 128 / 69257 - 5 = 197.33; decay_times =
    # log(2e-4 / 0.016) / log(0.97) = 143.86; decay_epochs = 1.3717 (BUILD: "~1.37").
    steps_per_epoch = 69257 / 128
    total_epochs = 109474 * 128 / 69257 - 5
    decay_epochs = total_epochs / (math.log(2e-4 / 0.016) / math.log(0.97))
    assert decay_epochs == pytest.approx(1.3717, abs=1e-4)
    peak = training.scaled_learning_rate(0.016, 128)
    final = training.scaled_learning_rate(2e-4, 128)
    schedule = training.WarmupDecaySchedule(
        peak, steps_per_epoch, total_steps=109474, final_learning_rate=final
    )
    assert schedule.decay_epochs == pytest.approx(decay_epochs, rel=1e-9)
    period = decay_epochs * steps_per_epoch  # 742.2 steps
    for step in (2705, 5000, 50000, 109473):
        want = peak * 0.97 ** math.floor(step / period)
        assert float(schedule(step)) == pytest.approx(want, rel=1e-5), step
    # The staircase clock runs from step 0 (warm-up included) while the period was sized for
    # the epochs after warm-up, so the reference ends a little below final_base_lr:
    # 0.97^147 = 0.0114 of the peak, not 2e-4 / 0.016 = 0.0125.
    assert schedule.end_fraction() == pytest.approx(0.97**147, rel=1e-5)


def test_cosine_final_rate_and_the_annealing_note(training, console_records):
    cosine = training.WarmupDecaySchedule(
        0.1, 10, decay="cosine", warmup_epochs=0, total_steps=100, final_learning_rate=0.01
    )
    assert float(cosine(0)) == pytest.approx(0.1)
    assert float(cosine(50)) == pytest.approx(0.055)
    assert float(cosine(100)) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="final learning rate"):
        training.WarmupDecaySchedule(0.1, 10, total_steps=100, final_learning_rate=0.2)
    with pytest.raises(ValueError, match="no time to decay"):
        training.WarmupDecaySchedule(0.1, 10, total_steps=40, final_learning_rate=0.01)
    # 30 epochs of the ImageNet staircase end at 0.97^12 = 0.69x: the trainer notes it on the
    # console (INFO: the demo's recipe keeps such a schedule on purpose), never as a warning.
    from noisy_student.training.schedules import learning_rate_schedule

    config = training.TrainConfig(batch_size=64, num_train_examples=640, train_epochs=30)
    staircase = learning_rate_schedule(config)
    assert staircase.end_fraction() == pytest.approx(0.97**12, rel=1e-5)
    annealed = learning_rate_schedule(
        training.TrainConfig(
            batch_size=64, num_train_examples=640, train_epochs=30, final_base_learning_rate=1e-4
        )
    )
    assert annealed.end_fraction() < 0.1
    import logging

    training.schedules.note_if_not_annealed(staircase)
    training.schedules.note_if_not_annealed(annealed)
    notes = [r for r in console_records if "anneal" in r.getMessage()]
    assert len(notes) == 1 and "69%" in notes[0].getMessage()
    assert (notes[0].levelno, notes[0].name) == (logging.INFO, "noisy_student.console")


def test_optimizer_choices_follow_their_update_rules(training, keras):
    from noisy_student.training.optimizer import make_optimizer, uses_loss_weight_decay

    w0 = np.array([1.0, -2.0], "float32")
    grads = [np.array([0.5, 0.25], "float32"), np.array([-1.0, 0.5], "float32")]
    # SGD with Nesterov momentum (Keras' formulation): v = m*v - lr*g; w += m*v - lr*g.
    variable = keras.Variable(w0)
    optimizer = make_optimizer("momentum", 0.1, momentum=0.9)
    w, v = w0.copy(), np.zeros(2, "float32")
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        v = 0.9 * v - 0.1 * g
        w = w + 0.9 * v - 0.1 * g
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-6)
    # AdamW: decoupled decay w -= lr * wd * w, except on excluded (batch-norm) variables.
    decayed, kept = keras.Variable(w0), keras.Variable(w0)
    adamw = make_optimizer("adamw", 0.1, weight_decay=0.5, no_decay_variables=[kept])
    zero = keras.ops.zeros(2)
    adamw.apply_gradients([(zero, decayed), (zero, kept)])
    np.testing.assert_allclose(decayed.numpy(), w0 * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(kept.numpy(), w0, rtol=1e-6)
    assert isinstance(make_optimizer("rmsprop", 0.1), training.TF1RMSprop)
    assert uses_loss_weight_decay("rmsprop") and not uses_loss_weight_decay("adamw")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        make_optimizer("lars", 0.1)
