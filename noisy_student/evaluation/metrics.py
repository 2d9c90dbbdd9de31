"""The metrics: top-k by the rank of the true class, and the robustness metrics of ImageNet-C,
ImageNet-P and ImageNet-A (the passes over data are ``classification`` and ``robustness``).

Robustness definitions and AlexNet constants: D. Hendrycks and T. Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations", ICLR 2019 (arXiv:1903.12261), and its
code at github.com/hendrycks/robustness. ImageNet-A: D. Hendrycks, K. Zhao, S. Basart,
J. Steinhardt, D. Song, "Natural Adversarial Examples", CVPR 2021 (arXiv:1907.07174), class list
from github.com/hendrycks/natural-adv-examples.

Errors and flip probabilities are fractions in [0, 1]; the papers print them x100 (e.g. the Noisy
Student L2 figures mCE 28.3, mFR 12.2 are 0.283 and 0.122 here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# ImageNet-C: the 15 corruptions that make up mCE (the 4 extra "validation" corruptions are not
# part of it), and AlexNet's top-1 error on each, averaged over severities 1-5 (Hendrycks &
# Dietterich, ICLR 2019; the per-severity values are in their repository).
IMAGENET_C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
ALEXNET_IMAGENET_C_ERRORS = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948,
    "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572, "fog": 0.819324,
    "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
NUM_SEVERITIES = 5

# ImageNet-P: the 10 perturbations that make up mFR. Noise sequences are not temporally ordered
# (each frame is an independent noise draw), so their frames are compared with the first frame;
# the other sequences compare consecutive frames. The reference code marks a perturbation as noise
# when its name contains "noise" (gaussian_noise, shot_noise and the extra speckle_noise).
IMAGENET_P_PERTURBATIONS = (
    "gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness", "translate",
    "rotate", "tilt", "scale",
)

# ImageNet-A: indices (in the 1000-class ImageNet order) of its 200 classes, in the order of the
# ImageNet-A labels 0..199 (the `thousand_k_to_200` mapping of hendrycks/natural-adv-examples).
IMAGENET_A_INDICES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89, 90, 94, 96, 97,
    99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234, 235, 254, 277,
    283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319, 323, 324,
    326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402, 404, 407, 411,
    416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472, 483, 486, 488, 492,
    496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569, 572, 573, 575, 579, 589,
    606, 607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719,
    736, 746, 749, 752, 758, 763, 765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802, 803, 804,
    813, 815, 820, 823, 831, 833, 835, 839, 845, 847, 850, 859, 862, 870, 879, 880, 888, 890, 897,
    900, 907, 913, 924, 932, 933, 934, 937, 943, 945, 947, 951, 954, 956, 957, 959, 971, 972, 980,
    981, 984, 986, 987, 988,
)


# ----------------------------------------------------------------------------- accuracy


def true_class_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row, how many classes score strictly higher than the true one: top-k accuracy is
    the fraction of ranks below k (ties at the boundary count as hits, as in
    `tf.math.in_top_k`). ``labels`` are integers [N] or one-hot [N, C]."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    true = scores[np.arange(len(labels)), labels]
    return (scores > true[:, None]).sum(axis=1)


def imagenet_a_scores(scores_1000: np.ndarray) -> np.ndarray:
    """The 200 ImageNet-A columns of 1000-way scores (logits or probabilities), [N, 200]."""
    scores = np.asarray(scores_1000)
    if scores.shape[-1] != 1000:
        raise ValueError(f"ImageNet-A masking needs 1000-class scores, got {scores.shape[-1]}")
    return scores[..., list(IMAGENET_A_INDICES)]


# ----------------------------------------------------------------------------- ImageNet-C


def _severity_errors(name: str, errors: Sequence[float]) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64)
    if errors.shape != (NUM_SEVERITIES,):
        raise ValueError(f"{name}: need the error at each of the {NUM_SEVERITIES} severities, "
                         f"got {errors.shape}")
    if (errors < 0).any() or (errors > 1).any():
        raise ValueError(f"{name}: errors are fractions in [0, 1], got {errors.tolist()}")
    return errors


def corruption_error(model_errors: Sequence[float], alexnet_mean_error: float) -> float:
    """CE_c = sum over severities of the model's error / the same sum for AlexNet
    (Hendrycks & Dietterich, ICLR 2019). AlexNet's sum is 5x its severity-averaged error."""
    errors = _severity_errors("corruption", model_errors)
    return float(errors.sum() / (NUM_SEVERITIES * alexnet_mean_error))


def mean_corruption_error(errors: Mapping[str, Sequence[float]], *,
                          baseline: Mapping[str, float] = ALEXNET_IMAGENET_C_ERRORS,
                          corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS) -> dict:
    """mCE: mean of CE_c over the 15 ImageNet-C corruptions, normalized by AlexNet.

    `errors` maps each corruption name to the model's top-1 errors at severities 1-5.
    Returns {"mCE": float, "CE": {name: float}}.
    """
    missing = [c for c in corruptions if c not in errors]
    if missing:
        raise ValueError(f"mCE needs errors for every corruption; missing {missing}")
    ce = {c: corruption_error(_severity_errors(c, errors[c]), baseline[c]) for c in corruptions}
    return {"mCE": float(np.mean(list(ce.values()))), "CE": ce}


def relative_mean_corruption_error(errors: Mapping[str, Sequence[float]], clean_error: float,
                                   alexnet_clean_error: float, *,
                                   baseline: Mapping[str, float] = ALEXNET_IMAGENET_C_ERRORS,
                                   corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS) -> dict:
    """Relative mCE: mean over corruptions of sum_s (E_s,c - E_clean) / the same for AlexNet.

    AlexNet's clean top-1 error is an argument (it is not among our cited constants).
    Returns {"relative_mCE": float, "relative_CE": {name: float}}.
    """
    missing = [c for c in corruptions if c not in errors]
    if missing:
        raise ValueError(f"relative mCE needs errors for every corruption; missing {missing}")
    rel = {}
    for c in corruptions:
        model_gap = _severity_errors(c, errors[c]).sum() - NUM_SEVERITIES * clean_error
        alexnet_gap = NUM_SEVERITIES * (baseline[c] - alexnet_clean_error)
        rel[c] = float(model_gap / alexnet_gap)
    return {"relative_mCE": float(np.mean(list(rel.values()))), "relative_CE": rel}


# ----------------------------------------------------------------------------- ImageNet-P


def is_noise_perturbation(name: str) -> bool:
    """Noise sequences compare every frame with the first (reference rule: 'noise' in the name)."""
    return "noise" in name


def flip_probability(predictions: np.ndarray, *, noise: bool, difficulty: int = 1) -> float:
    """Flip probability of top-1 predictions over perturbation sequences (ImageNet-P).

    `predictions` is int [num_sequences, num_frames]. Noise sequences count frames whose
    prediction differs from the first frame's; the others count changes between consecutive
    frames, taken `difficulty` frames apart (each of the `difficulty` interleaved subsequences
    separately). Averaged within each sequence, then over sequences.
    """
    preds = np.asarray(predictions)
    if preds.ndim != 2 or preds.shape[1] < 2:
        raise ValueError(f"predictions must be [num_sequences, num_frames >= 2], got {preds.shape}")
    if noise:
        flips = preds[:, 1:] != preds[:, :1]
    else:
        if difficulty < 1:
            raise ValueError(f"difficulty must be >= 1, got {difficulty}")
        flips = preds[:, difficulty:] != preds[:, :-difficulty]
    if flips.shape[1] == 0:
        raise ValueError(f"sequences of {preds.shape[1]} frames have no pairs {difficulty} apart")
    return float(flips.mean(axis=1).mean())


def mean_flip_rate(flip_probabilities: Mapping[str, float],
                   alexnet_flip_probabilities: Mapping[str, float], *,
                   perturbations: Sequence[str] = IMAGENET_P_PERTURBATIONS) -> dict:
    """mFR: mean over the 10 ImageNet-P perturbations of FP_model / FP_AlexNet.

    AlexNet's flip probabilities are an argument: we did not find them as published numbers we
    could cite (Hendrycks & Dietterich, ICLR 2019 report normalized flip rates); compute them with
    `flip_probability` on AlexNet's predictions. Returns {"mFR": float, "FR": {name: float}}.
    """
    for source, name in ((flip_probabilities, "model"), (alexnet_flip_probabilities, "AlexNet")):
        missing = [p for p in perturbations if p not in source]
        if missing:
            raise ValueError(f"mFR needs {name} flip probabilities for every perturbation; "
                             f"missing {missing}")
    fr = {p: float(flip_probabilities[p] / alexnet_flip_probabilities[p]) for p in perturbations}
    return {"mFR": float(np.mean(list(fr.values()))), "FR": fr}
