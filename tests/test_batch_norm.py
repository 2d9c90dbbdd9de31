"""FusedBatchNormalization: the TensorFlow fused-kernel training and inference paths against
NumPy and against Keras' own BatchNormalization (outputs, gradients, moving statistics), and the
cases that must fall back to Keras' computation."""

import numpy as np
import pytest

from efficientnet_tf import FusedBatchNormalization


def numpy_batch_norm(x, gamma, beta, epsilon):
    mean = x.mean(axis=(0, 1, 2))
    variance = x.var(axis=(0, 1, 2))  # the biased variance normalizes, in every BN
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta, mean, variance


def make_pair(keras, shape, momentum=0.9, epsilon=1e-3):
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 2.0, shape[-1]).astype("float32")
    beta = rng.normal(0, 1, shape[-1]).astype("float32")
    layers = []
    for cls in (FusedBatchNormalization, keras.layers.BatchNormalization):
        layer = cls(momentum=momentum, epsilon=epsilon)
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        layers.append(layer)
    return layers, gamma, beta


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 6, 7)).astype("float32")


def test_training_output_and_moving_statistics_match_numpy(keras, x):
    (fused, _), gamma, beta = make_pair(keras, x.shape)
    with_fast_path = []
    original = FusedBatchNormalization._fused_training_call

    def spy(self, inputs):
        with_fast_path.append(self.name)
        return original(self, inputs)

    FusedBatchNormalization._fused_training_call = spy
    try:
        out = np.asarray(fused(x, training=True))
    finally:
        FusedBatchNormalization._fused_training_call = original
    assert with_fast_path, "the fused kernel was not used in training mode"
    expected, mean, variance = numpy_batch_norm(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(out, expected, atol=2e-5)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    # Moving statistics start at 0 / 1 and move by (1 - momentum) toward the batch's; the
    # variance is the fused kernel's Bessel-corrected one, as in the reference's TF1 layer.
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), 0.9 + 0.1 * variance * n / (n - 1), rtol=1e-5
    )


def test_gradients_equal_keras_batch_norm(tf, keras, x):
    (fused, plain), _, _ = make_pair(keras, x.shape)
    weights = tf.constant(np.arange(7, dtype="float32"))
    results = []
    for layer in (fused, plain):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=True) ** 2 * weights)
        grads = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
        results.append([np.asarray(g) for g in grads])
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def fused_path(layer, inputs, **kwargs) -> str | None:
    """Which fused path ("training", "inference") a call took; None = Keras' own ops."""
    taken = []
    originals = {name: getattr(FusedBatchNormalization, f"_fused_{name}_call")
                 for name in ("training", "inference")}

    def spy(name):
        return lambda self, v: taken.append(name) or originals[name](self, v)

    try:
        for name in originals:
            setattr(FusedBatchNormalization, f"_fused_{name}_call", spy(name))
        layer(inputs, **kwargs)
    finally:
        for name, original in originals.items():
            setattr(FusedBatchNormalization, f"_fused_{name}_call", original)
    return taken[0] if taken else None


def test_falls_back_to_keras_where_the_kernel_does_not_apply(tf, keras, x):
    (fused, _), _, _ = make_pair(keras, x.shape)
    assert fused_path(fused, x, training=True) == "training"
    small = np.random.default_rng(2).normal(size=(8, 2, 2, 7)).astype("float32")
    assert fused_path(fused, small, training=True) == "training"  # any map size
    assert fused_path(fused, small, training=False) == "inference"  # one pass wins at any size
    flat = FusedBatchNormalization()
    assert fused_path(flat, x.reshape(4, 30, 7), training=True) is None  # not 4-D
    assert fused_path(flat, x.reshape(4, 30, 7), training=False) is None
    channels_first = FusedBatchNormalization(axis=1)
    assert fused_path(channels_first, x, training=False) is None
    synced = FusedBatchNormalization(synchronized=True)
    assert fused_path(synced, x, training=True) == "training"  # one replica: nothing to sync
    # Two replicas (Keras' all-reduced statistics) are covered by test_distribution.py, whose
    # MirroredStrategy run must match a single-device run of the same global batch.


@pytest.mark.parametrize("frozen", [False, True], ids=["inference", "frozen_in_training"])
def test_inference_path_matches_keras_and_numpy(tf, keras, x, frozen):
    """With moving statistics (inference, or a frozen layer called with training=True) the
    fused kernel gives Keras' outputs and gradients, and leaves the statistics alone."""
    (fused, plain), gamma, beta = make_pair(keras, x.shape)
    rng = np.random.default_rng(3)
    mean = rng.normal(1.0, 1.0, x.shape[-1]).astype("float32")
    variance = rng.uniform(0.5, 4.0, x.shape[-1]).astype("float32")
    for layer in (fused, plain):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
        layer.trainable = not frozen
    training = frozen  # a frozen layer in a training step must still use moving statistics
    assert fused_path(fused, x, training=training) == "inference"
    weights = tf.constant(np.arange(7, dtype="float32"))
    results = []
    for layer in (fused, plain):
        inputs = tf.constant(x)
        variables = [layer.gamma.value, layer.beta.value]  # watched even when frozen
        with tf.GradientTape() as tape:
            tape.watch([inputs, *variables])
            out = layer(inputs, training=training)
            loss = tf.reduce_sum(out**2 * weights)
        grads = tape.gradient(loss, [inputs, *variables])
        results.append([np.asarray(out), *[np.asarray(g) for g in grads]])
    expected = (x - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    np.testing.assert_allclose(results[0][0], expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), mean)
    np.testing.assert_array_equal(fused.moving_variance.numpy(), variance)


# Models saved with Keras' BatchNormalization before the change: test_fast_paths.py.
