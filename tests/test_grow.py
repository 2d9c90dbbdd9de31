"""grow_model: a wider and deeper EfficientNet that computes its source's function exactly, then
trains and saves like any other."""

import numpy as np
import pytest

from efficientnet_tf import EfficientNet, architecture_of, grow_model
from efficientnet_tf.blocks import MBConvBlock


def as_trained(model, seed=0):
    """Random batch-norm parameters and moving statistics, and random biases, as after training
    (a fresh model's gamma = 1, beta = 0, mean = 0, variance = 1 would hide copying errors)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        name = variable.path.split("/")[-1]
        if name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, variable.shape)
        elif name in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.5, variable.shape)
        else:
            continue
        variable.assign(value.astype("float32"))
    return model


def small(width=0.5, depth=0.5, **kwargs):
    """The CIFAR recipe's teacher shape: 32x32 variant, 10 classes, logits."""
    options = dict(small_images=True, input_shape=(32, 32, 3), classes=10,
                   classifier_activation=None, name="teacher")
    return EfficientNet(width, depth, 32, **{**options, **kwargs})


@pytest.fixture(scope="module")
def teacher(keras):
    keras.utils.set_random_seed(0)
    return as_trained(small())


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 3)).astype("float32")


def logits(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize(
    "width, depth",
    [(0.5, 1.0), (1.0, 0.5), (0.55, 1.0), (1.0, 1.0)],
    ids=["depth", "width", "both-2x-flops", "both"],
)
def test_grown_model_computes_the_same_logits(teacher, images, width, depth):
    expected = logits(teacher, images)
    assert np.ptp(expected, axis=0).max() > 0.1  # the inputs matter
    grown = grow_model(teacher, width_coefficient=width, depth_coefficient=depth)
    record = architecture_of(grown)
    assert (record.width_coefficient, record.depth_coefficient) == (width, depth)
    assert grown.count_params() > teacher.count_params()
    np.testing.assert_allclose(logits(grown, images), expected, atol=1e-4, rtol=0)


def test_growth_at_224_pixels_with_softmax_head(keras):
    keras.utils.set_random_seed(2)
    teacher = as_trained(EfficientNet(0.5, 0.25, 224, classes=7, name="t224"), seed=3)
    x = np.random.default_rng(4).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    grown = grow_model(teacher, width_coefficient=0.75, depth_coefficient=0.5)
    assert len(grown.layers) > len(teacher.layers)
    np.testing.assert_allclose(logits(grown, x), logits(teacher, x), atol=1e-5, rtol=0)
    assert grown.get_layer("predictions").get_config()["activation"] == "softmax"


def test_added_blocks_are_identities_and_others_are_copies(teacher):
    grown = grow_model(teacher, width_coefficient=0.5, depth_coefficient=1.0)
    old = {layer.name for layer in teacher.layers if isinstance(layer, MBConvBlock)}
    added = [layer for layer in grown.layers if isinstance(layer, MBConvBlock)
             and layer.name not in old]
    assert added and all(block.has_skip for block in added)
    for block in added:
        assert not np.any(np.asarray(block.project_bn.gamma))
        assert not np.any(np.asarray(block.project_bn.beta))
    # Same width: every kept layer's weights are the teacher's, unchanged.
    for name in old:
        for mine, theirs in zip(grown.get_layer(name).weights, teacher.get_layer(name).weights,
                                strict=True):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))


def test_settings_carry_over_unless_overridden(teacher):
    grown = grow_model(teacher, width_coefficient=0.55, depth_coefficient=1.0,
                       dropout_rate=0.4, stochastic_depth_rate=0.3)
    assert grown.get_layer("top_dropout").rate == 0.4
    blocks = [layer for layer in grown.layers if isinstance(layer, MBConvBlock)]
    assert blocks[-1].stochastic_depth_rate == pytest.approx(0.3 * (len(blocks) - 1) /
                                                             len(blocks))
    assert grown.input_shape == teacher.input_shape
    assert grown.output_shape == teacher.output_shape
    same = grow_model(teacher, width_coefficient=0.5, depth_coefficient=0.5)
    assert same.get_layer("top_dropout").rate == teacher.get_layer("top_dropout").rate


def test_noise_breaks_symmetry_but_keeps_the_function_close(teacher, images):
    exact = grow_model(teacher, width_coefficient=1.0, depth_coefficient=0.5, seed=5)
    noisy = grow_model(teacher, width_coefficient=1.0, depth_coefficient=0.5, seed=5,
                       noise_stddev=0.01)
    kernel = np.asarray(noisy.get_layer("top_conv").kernel)
    original = teacher.get_layer("top_conv").kernel.shape[-1]
    copies = kernel[..., original:]
    assert not np.array_equal(copies, np.asarray(exact.get_layer("top_conv").kernel)[...,
                                                                                  original:])
    np.testing.assert_array_equal(kernel[..., :original],
                                  np.asarray(exact.get_layer("top_conv").kernel)[...,
                                                                                :original])
    difference = np.abs(logits(noisy, images) - logits(exact, images)).max()
    assert 0 < difference < 0.1 * np.abs(logits(exact, images)).max()


def test_grown_model_trains_and_round_trips(keras, teacher, images, tmp_path):
    grown = grow_model(teacher, width_coefficient=0.55, depth_coefficient=1.0, seed=1,
                       noise_stddev=0.01)
    labels = np.arange(len(images)) % 10
    grown.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = grown.evaluate(images, labels, verbose=0)
    grown.fit(images, labels, epochs=8, batch_size=6, verbose=0)
    assert grown.evaluate(images, labels, verbose=0) < first
    added = grown.get_layer("block2b").project_bn.gamma  # an added block learns
    assert np.any(np.asarray(added))
    path = tmp_path / "grown.keras"
    grown.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(logits(loaded, images), logits(grown, images))
    assert architecture_of(loaded) == architecture_of(grown)


def test_refuses_what_cannot_be_exact(keras, teacher):
    with pytest.raises(ValueError, match="at least the model's"):
        grow_model(teacher, width_coefficient=0.25, depth_coefficient=0.5)
    # At width 0.6 block2a becomes 16 -> 16 channels with stride 1 (32x32 variant) and gains a
    # residual connection that no weight copy can cancel.
    with pytest.raises(ValueError, match="block2a.*residual"):
        grow_model(teacher, width_coefficient=0.6, depth_coefficient=0.5)
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="records no EfficientNet architecture"):
        grow_model(plain, width_coefficient=1.0, depth_coefficient=1.0)
