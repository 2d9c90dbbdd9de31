"""Batch norms folded into their convolutions: the folded model computes the original's function
(ours and keras.applications' EfficientNet, batch-norm statistics random), folds only what it
may, and labeling runs its teacher folded."""

import numpy as np
import pytest


def _randomize_batch_norms(keras, model, seed=0):
    """Random gamma, beta and moving statistics, so that a fold that drops any of them shows."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.3, n))
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, n))


def _batch_norms(keras, model):
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def _assert_same_function(model, folded, images):
    expected = np.asarray(model(images, training=False))
    got = np.asarray(folded(images, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
    assert np.abs(expected).max() > 1e-2  # the outputs are not flat, so a wrong fold shows


def test_folded_efficientnet_computes_the_same_function(keras):
    from efficientnet_tf import create_model, fold_batch_norm, portable_model

    # Every kind of block: expand ratio 1 and 6, strides 1 and 2, skips, squeeze-excite, maps
    # down to 1x1 (the small-map depthwise path).
    model = create_model("b0", weights=None, classes=10, small_images=True,
                         width_coefficient=0.25, depth_coefficient=0.25,
                         classifier_activation=None)
    _randomize_batch_norms(keras, model)
    folded = fold_batch_norm(model)
    images = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    _assert_same_function(model, folded, images)
    assert _batch_norms(keras, model) and not _batch_norms(keras, folded)
    biased = [layer for layer in folded.layers  # top level: not the squeeze-excite convolutions
              if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
              and layer.use_bias]
    assert len(biased) == len(_batch_norms(keras, model))
    portable_model(model)  # the original is left as it was: its graph still rebuilds


def test_keras_applications_efficientnet_folds_too(keras):
    from efficientnet_tf import fold_batch_norm

    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3),
                                              classifier_activation=None)
    _randomize_batch_norms(keras, model, seed=2)
    folded = fold_batch_norm(model)
    images = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    _assert_same_function(model, folded, images)
    assert len(_batch_norms(keras, model)) == 49 and not _batch_norms(keras, folded)


def test_only_foldable_batch_norms_are_folded(keras):
    """Folded: after a biased convolution, after a depthwise one with multiplier 2. Kept: after
    an activation, after a convolution whose output feeds something else too."""
    from efficientnet_tf import fold_batch_norm

    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=True, name="biased")(inputs)
    x = layers.BatchNormalization(name="bn_biased")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = layers.BatchNormalization(name="bn_dw")(x)
    y = layers.Conv2D(8, 1, activation="relu", name="relu_conv")(x)
    y = layers.BatchNormalization(name="bn_after_relu")(y)
    z = layers.Conv2D(8, 1, use_bias=False, name="shared")(y)
    out = layers.Add()([layers.BatchNormalization(name="bn_shared")(z), z])
    model = keras.Model(inputs, out)
    _randomize_batch_norms(keras, model, seed=4)
    folded = fold_batch_norm(model)
    _assert_same_function(model, folded,
                          np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype("float32"))
    assert sorted(bn.name for bn in _batch_norms(keras, folded)) == ["bn_after_relu",
                                                                       "bn_shared"]


def test_a_subclassed_teacher_labels_unfolded(keras):
    from noisy_student.targets import inference_teacher

    class Teacher(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    teacher = Teacher()
    teacher(np.zeros((1, 2), "float32"))
    assert inference_teacher(teacher) is teacher


@pytest.mark.parametrize("hard", [False, True])
def test_labeling_runs_the_teacher_folded(tf, keras, hard):
    from tiny_models import make_model_fn

    from noisy_student.pseudo_labels.labeling import make_label_fn

    teacher = make_model_fn(keras, seed=6)()
    label = make_label_fn(teacher, hard=hard)
    graph = label.get_concrete_function(tf.TensorSpec([None, 32, 32, 3], tf.float32)).graph
    types = {op.type for op in graph.get_operations()}
    assert "Conv2D" in types or "MatMul" in types
    assert not any("BatchNorm" in t for t in types)
