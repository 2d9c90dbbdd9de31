"""benchmarks/teacher_generalization.py: the batch-norm recomputation it compares against."""

import numpy as np
import pytest
from benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def module():
    return load_benchmark("teacher_generalization")


def test_batch_norm_recompute_is_the_mean_of_batch_statistics_without_stochastic_depth(module):
    import keras

    from efficientnet_tf.blocks import StochasticDepth

    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (module.BATCH, 3)) for loc, scale in ((-2, 1), (5, 3))]
    drop = StochasticDepth(0.9, seed=1)
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Sequential([keras.Input((3,)), drop, norm])
    module.recompute_batch_norm(model, np.concatenate(batches))

    np.testing.assert_allclose(norm.moving_mean.numpy(),
                               np.mean([b.mean(axis=0) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(),
                               np.mean([b.var(axis=0) for b in batches], axis=0), rtol=1e-3)
    assert drop.rate == 0.9  # restored after the pass


def test_scores_per_class_and_cross_entropy(module):
    class Fixed:
        def __call__(self, images, training=False):
            return np.log(np.tile([[0.7, 0.2, 0.1]], (len(images), 1)))

    labels = np.array([0, 0, 1, 2])
    result = module.scores(Fixed(), np.zeros((4, 1)), labels, 3)
    assert result["top1"] == 0.5
    assert result["per_class_top1"] == [1.0, 0.0, 0.0]
    assert result["cross_entropy"] == pytest.approx(-np.mean(np.log([0.7, 0.7, 0.2, 0.1])))
