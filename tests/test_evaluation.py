"""Accuracy and robustness metrics against hand-computed values and published constants."""

import numpy as np
import pytest

from noisy_student.evaluation import classification
from noisy_student.evaluation import metrics as ev


def test_alexnet_imagenet_c_constants_are_severity_means():
    # Published per-severity AlexNet errors (Hendrycks & Dietterich; hendrycks/robustness) for two
    # corruptions: their means are the severity-averaged constants.
    gaussian = [0.69528, 0.82542, 0.93554, 0.98138, 0.99452]
    brightness = [0.4514, 0.48502, 0.54048, 0.62166, 0.7244]
    assert ev.ALEXNET_IMAGENET_C_ERRORS["gaussian_noise"] == pytest.approx(np.mean(gaussian))
    assert ev.ALEXNET_IMAGENET_C_ERRORS["brightness"] == pytest.approx(np.mean(brightness))
    assert set(ev.ALEXNET_IMAGENET_C_ERRORS) == set(ev.IMAGENET_C_CORRUPTIONS)
    assert len(ev.IMAGENET_C_CORRUPTIONS) == 15


def test_alexnet_itself_has_mce_one():
    gaussian = [0.69528, 0.82542, 0.93554, 0.98138, 0.99452]
    assert ev.corruption_error(gaussian, ev.ALEXNET_IMAGENET_C_ERRORS["gaussian_noise"]) == (
        pytest.approx(1.0))


def test_mce_hand_computed():
    # Model with the same error e_c at every severity: CE_c = 5 e_c / (5 a_c) = e_c / a_c.
    errors = {c: [0.5] * 5 for c in ev.IMAGENET_C_CORRUPTIONS}
    errors["brightness"] = [0.1, 0.2, 0.3, 0.4, 0.5]  # sum 1.5 / (5 * .564592)
    result = ev.mean_corruption_error(errors)
    assert result["CE"]["fog"] == pytest.approx(0.5 / 0.819324)
    assert result["CE"]["brightness"] == pytest.approx(1.5 / (5 * 0.564592))
    expected = np.mean([0.5 / ev.ALEXNET_IMAGENET_C_ERRORS[c] for c in ev.IMAGENET_C_CORRUPTIONS
                        if c != "brightness"] + [1.5 / (5 * 0.564592)])
    assert result["mCE"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="missing"):
        ev.mean_corruption_error({"fog": [0.5] * 5})
    with pytest.raises(ValueError, match="severities"):
        ev.corruption_error([0.5] * 4, 0.8)


def test_relative_mce_hand_computed():
    errors = {c: [0.6] * 5 for c in ev.IMAGENET_C_CORRUPTIONS}
    result = ev.relative_mean_corruption_error(errors, clean_error=0.2, alexnet_clean_error=0.4)
    # (5*.6 - 5*.2) / (5*(a_c - .4)) = .4 / (a_c - .4)
    assert result["relative_CE"]["snow"] == pytest.approx(0.4 / (0.866816 - 0.4))


def test_flip_probability_consecutive_and_noise():
    preds = np.array([[1, 1, 2, 2, 1],    # consecutive flips: 2 of 4; vs first: 2 of 4
                      [3, 4, 4, 4, 4]])   # consecutive: 1 of 4; vs first: 4 of 4
    assert ev.flip_probability(preds, noise=False) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert ev.flip_probability(preds, noise=True) == pytest.approx((2 / 4 + 4 / 4) / 2)
    # difficulty 2: pairs (0,2) (1,3) (2,4): row 0 -> 1!=2, 1!=2, 2!=1 = 3/3; row 1 -> 3!=4,
    # 4==4, 4==4 = 1/3.
    assert ev.flip_probability(preds, noise=False, difficulty=2) == pytest.approx((1 + 1 / 3) / 2)
    assert ev.is_noise_perturbation("shot_noise") and not ev.is_noise_perturbation("tilt")


def test_mean_flip_rate_hand_computed():
    model = {p: 0.02 for p in ev.IMAGENET_P_PERTURBATIONS}
    alexnet = {p: 0.1 for p in ev.IMAGENET_P_PERTURBATIONS}
    alexnet["scale"] = 0.04
    result = ev.mean_flip_rate(model, alexnet)
    assert result["FR"]["scale"] == pytest.approx(0.5)
    assert result["mFR"] == pytest.approx((9 * 0.2 + 0.5) / 10)
    with pytest.raises(ValueError, match="AlexNet"):
        ev.mean_flip_rate(model, {"scale": 0.1})


def test_imagenet_a_indices_match_published_classes():
    idx = ev.IMAGENET_A_INDICES
    assert len(idx) == 200 and len(set(idx)) == 200 and list(idx) == sorted(idx)
    # First and last ImageNet-A classes: stingray (n01498041, index 6) and acorn (n12267677, 988);
    # goldfish (1) is in it, tench (0) is not.
    assert idx[0] == 6 and idx[-1] == 988 and 1 not in idx and 11 in idx
    scores = np.arange(2000, dtype=float).reshape(2, 1000)
    masked = ev.imagenet_a_scores(scores)
    assert masked.shape == (2, 200) and masked[1, 0] == 1006 and masked[0, -1] == 988


def _numpy_topk(scores, labels, k):
    """Independent reference: label counts as top-k when fewer than k scores beat it."""
    return float(np.mean([(row > row[y]).sum() < k for row, y in zip(scores, labels,
                                                                     strict=True)]))


def test_evaluate_against_numpy(tf, keras):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(12)])
    labels = rng.integers(0, 12, 70)
    scores = model.predict(x, verbose=0)
    one_hot = np.eye(12, dtype="float32")[labels]
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(16)
    result = classification.evaluate(model, dataset)
    assert result["num_examples"] == 70
    assert result["top1"] == pytest.approx(_numpy_topk(scores, labels, 1))
    assert result["top5"] == pytest.approx(_numpy_topk(scores, labels, 5))
    # Integer labels and a class subset (labels index the subset).
    subset = [1, 3, 5, 7, 9, 11]
    sub_labels = rng.integers(0, 6, 70)
    dataset = tf.data.Dataset.from_tensor_slices((x, sub_labels)).batch(32)
    result = classification.evaluate(model, dataset, class_indices=subset)
    assert result["top1"] == pytest.approx(_numpy_topk(scores[:, subset], sub_labels, 1))
    assert result["top5"] == pytest.approx(_numpy_topk(scores[:, subset], sub_labels, 5))
