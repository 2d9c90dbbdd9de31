"""The TensorFlow fast paths of PointwiseConv2D, SmallMapDepthwiseConv2D and FusedActivation
against Keras' own layers (outputs and gradients), the inputs that must keep Keras' computation,
a whole model's training step, and models saved with Keras' layers before the fast paths."""

import numpy as np
import pytest

from efficientnet_tf import EfficientNet, activations, convolutions
from efficientnet_tf import blocks as blocks_module
from efficientnet_tf import network as network_module
from efficientnet_tf.activations import FusedActivation
from efficientnet_tf.convolutions import PointwiseConv2D, SmallMapDepthwiseConv2D
from efficientnet_tf.fast_paths import keras_computation


@pytest.fixture
def mixing_calls(monkeypatch):
    """Counts the depthwise calls that took the mixing product."""
    calls = []
    original = convolutions._mix_pixels

    def spy(*args):
        calls.append(args[2].shape)
        return original(*args)

    monkeypatch.setattr(convolutions, "_mix_pixels", spy)
    return calls


def output_and_gradient_tensors(tf, layer, x, **kwargs):
    """The layer's output and the gradients of a weighted sum of squares with respect to the
    input and to each trainable weight."""
    inputs = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = layer(inputs, **kwargs)
        weights = tf.range(1.0, 1.0 + out.shape[-1])
        loss = tf.reduce_sum(out**2 * weights)
    return [out, *tape.gradient(loss, [inputs, *layer.trainable_weights])]


def outputs_and_gradients(tf, layer, x, **kwargs):
    return [np.asarray(t) for t in output_and_gradient_tensors(tf, layer, x, **kwargs)]


def assert_fast_equals_keras(tf, layer, x, **kwargs):
    fast = outputs_and_gradients(tf, layer, x, **kwargs)
    with keras_computation():
        plain = outputs_and_gradients(tf, layer, x, **kwargs)
    assert len(fast) == len(plain)
    for got, want in zip(fast, plain, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def small_map_cases():
    """Every input of at most 4 pixels x kernel sizes x strides x padding."""
    for height in (1, 2, 3, 4):
        for width in (1, 2, 3, 4):
            if height * width > convolutions.MAX_MIXING_PIXELS:
                continue
            for kernel in (1, 2, 3, 5):
                for strides in (1, 2):
                    yield height, width, kernel, strides, "same"
                    if kernel <= min(height, width):
                        yield height, width, kernel, strides, "valid"


def test_depthwise_mixing_equals_keras_on_every_small_map(tf, mixing_calls):
    rng = np.random.default_rng(0)
    cases = list(small_map_cases())
    for height, width, kernel, strides, padding in cases:
        layer = SmallMapDepthwiseConv2D(kernel, strides=strides, padding=padding, use_bias=True)
        x = rng.normal(size=(3, height, width, 5)).astype("float32")
        layer.build(x.shape)
        layer.bias.assign(rng.normal(size=5).astype("float32"))
        assert_fast_equals_keras(tf, layer, x)
    assert len(mixing_calls) == len(cases)  # once per case: never under keras_computation()


def test_depthwise_keeps_the_native_kernel_elsewhere(tf, keras, mixing_calls):
    rng = np.random.default_rng(1)
    for kwargs, shape in [
        ({}, (2, 3, 2, 4)),  # 6 pixels
        ({}, (2, 8, 8, 4)),
        ({"depth_multiplier": 2}, (2, 2, 2, 4)),
        ({"dilation_rate": 2}, (2, 2, 2, 4)),
    ]:
        layer = SmallMapDepthwiseConv2D(3, padding="same", **kwargs)
        x = rng.normal(size=shape).astype("float32")
        assert_fast_equals_keras(tf, layer, x)
    assert mixing_calls == []
    symbolic = keras.Input((None, None, 4))
    assert SmallMapDepthwiseConv2D(3)(symbolic).shape[1:] == (None, None, 4)  # unknown size
    assert mixing_calls == []


def test_pointwise_matmul_equals_keras_conv(tf, keras, monkeypatch):
    convolutions_by_keras = []
    original = keras.layers.Conv2D.convolution_op

    def spy(self, *args):
        convolutions_by_keras.append(self.name)
        return original(self, *args)

    monkeypatch.setattr(keras.layers.Conv2D, "convolution_op", spy)
    layer = PointwiseConv2D(6, activation="swish", name="pw")
    x = np.random.default_rng(2).normal(size=(3, 4, 5, 7)).astype("float32")
    layer.build(x.shape)
    layer.bias.assign(np.linspace(-1, 1, 6).astype("float32"))
    fast = outputs_and_gradients(tf, layer, x)
    assert convolutions_by_keras == []
    assert_fast_equals_keras(tf, layer, x)
    assert convolutions_by_keras == ["pw"]  # only the call under keras_computation()
    reference = keras.layers.Conv2D(6, 1, activation="swish")
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(fast[0], np.asarray(reference(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"kernel_size": 3}, {"strides": 2}])
def test_pointwise_refuses_other_kernels(kwargs):
    with pytest.raises(ValueError, match="'bad'.*kernel_size 1 and strides 1"):
        PointwiseConv2D(4, name="bad", **kwargs)


@pytest.fixture
def fused_swish_calls(monkeypatch):
    """Counts the FusedActivation calls that took the fused-gradient swish."""
    calls = []
    original = activations._swish_with_fused_gradient

    def spy():
        swish = original()
        return lambda x: calls.append(tuple(x.shape)) or swish(x)

    monkeypatch.setattr(activations, "_swish_with_fused_gradient", spy)
    return calls


def test_fused_swish_gradient_equals_keras(tf, keras, fused_swish_calls):
    x = np.random.default_rng(3).normal(0, 3, (2, 3, 4, 5)).astype("float32")
    layer = FusedActivation("swish")
    assert_fast_equals_keras(tf, layer, x, training=True)
    assert fused_swish_calls == [x.shape]
    traced = tf.function(lambda v: output_and_gradient_tensors(tf, layer, v, training=True))
    eager = outputs_and_gradients(tf, keras.layers.Activation("swish"), x)
    for got, want in zip(traced(x), eager, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert len(fused_swish_calls) == 2


def test_fused_swish_only_where_it_applies(tf, fused_swish_calls):
    x = np.random.default_rng(4).normal(size=(2, 3, 4, 5)).astype("float32")
    for layer, kwargs in [
        (FusedActivation("swish"), {"training": False}),
        (FusedActivation("swish"), {}),
        (FusedActivation("relu"), {"training": True}),
    ]:
        assert_fast_equals_keras(tf, layer, x, **kwargs)
    assert fused_swish_calls == []


def test_training_step_of_a_model_equals_keras_computation(
    tf, keras, mixing_calls, fused_swish_calls
):
    """A whole small EfficientNet at 64x64: maps from 32x32 down to 2x2 (mixing product),
    pointwise matmuls, fused batch norm and swish gradients."""
    model = EfficientNet(
        0.5, 0.5, 64, input_shape=(64, 64, 3), classes=5, name="fast",
        dropout_rate=0.0, stochastic_depth_rate=0.0,  # nothing random in the training step
    )
    rng = np.random.default_rng(5)
    images = tf.constant(rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32"))
    labels = tf.constant(rng.integers(0, 5, 4))

    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(labels, logits)
        return [np.asarray(logits)] + [
            np.asarray(g) for g in tape.gradient(loss, model.trainable_weights)
        ]

    state = [v.numpy() for v in model.weights]
    fast = step()
    assert mixing_calls and fused_swish_calls
    for variable, value in zip(model.weights, state, strict=True):
        variable.assign(value)  # same moving statistics for the second step
    with keras_computation():
        plain = step()
    np.testing.assert_allclose(fast[0], plain[0], rtol=1e-3, atol=1e-4)  # probabilities
    # Gradients that are zero in exact arithmetic (a bias feeding a batch norm in training)
    # come out as rounding noise, so each tensor is compared on the scale of all gradients.
    scale = max(np.abs(g).max() for g in plain[1:])
    names = [v.path for v in model.trainable_weights]
    for name, got, want in zip(names, fast[1:], plain[1:], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * scale, err_msg=name)


def test_models_saved_with_keras_layers_still_load(keras, tmp_path, monkeypatch):
    """A .keras file written before the fast-path layers existed holds Keras' BatchNormalization,
    Conv2D, DepthwiseConv2D and Activation; it loads and predicts as a new model with the same
    weights, whose variables come in the same order."""
    for module, name, keras_class in [
        (blocks_module, "FusedBatchNormalization", keras.layers.BatchNormalization),
        (blocks_module, "PointwiseConv2D", keras.layers.Conv2D),
        (blocks_module, "SmallMapDepthwiseConv2D", keras.layers.DepthwiseConv2D),
        (blocks_module, "FusedActivation", keras.layers.Activation),
        (network_module, "FusedActivation", keras.layers.Activation),
    ]:
        monkeypatch.setattr(module, name, keras_class)
    old = EfficientNet(0.25, 0.25, 32, classes=10, name="old")
    monkeypatch.undo()
    fast_classes = (PointwiseConv2D, SmallMapDepthwiseConv2D, FusedActivation)
    assert not any(
        isinstance(layer, fast_classes) for layer in old._flatten_layers(include_self=False)
    )
    rng = np.random.default_rng(0)
    old.set_weights([rng.normal(0.5, 0.2, w.shape).astype("float32") ** 2 for w in old.weights])
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = np.asarray(old(images, training=False))
    path = tmp_path / "old.keras"
    old.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)), expected, atol=1e-6)
    new = EfficientNet(0.25, 0.25, 32, classes=10, name="new")
    assert all(
        any(isinstance(layer, cls) for layer in new._flatten_layers(include_self=False))
        for cls in fast_classes
    )
    new.set_weights(old.get_weights())
    np.testing.assert_allclose(np.asarray(new(images, training=False)), expected, atol=1e-5)
