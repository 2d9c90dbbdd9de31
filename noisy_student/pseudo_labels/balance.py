"""Filter and balance rule of the reference `filter_unlabel.py`, in NumPy (no TensorFlow).

Each image belongs to its teacher class c (argmax) with confidence p (the top-1 probability).

* Confidence grid: 101 thresholds t_j = j/100, j = 0..100. Bin j holds t_j <= p < t_{j+1}
  (bin 100 holds p >= 1.0, which float error can produce).
* Threshold of class c: walk j from 100 down, skipping thresholds t_j >= max_prob and stopping
  below min_threshold, adding bin counts; stop at the first j whose cumulative count reaches
  num_image. If it never does, stop at min_threshold. The cumulative count there is total_c.
* Keep every image of class c with threshold_c <= p <= max_prob, with num_image/total_c copies
  under stochastic rounding: the integer part, plus one with probability equal to the fraction.
  Big classes are thus subsampled to about num_image (at bin granularity), small ones duplicated.
  upsample=False caps the copies at 1; use_all keeps every image above min_threshold once.

The class x bin counts are additive, so labeling stores each shard's counts (`sparse_counts`)
and filtering sums them instead of reading the records again.
"""

from __future__ import annotations

import numpy as np

NUM_BINS = 101
BIN_EDGES = np.arange(NUM_BINS, dtype=np.float64) / 100.0  # exactly j/100, as Python computes it



def _grid_index(threshold: float, name: str) -> int:
    index = round(threshold * 100)
    if not 0 <= index < NUM_BINS or abs(index - threshold * 100) > 1e-6:
        raise ValueError(f"{name}={threshold} must be on the 0.01 grid between 0 and 1 (e.g. 0.3)")
    return index


def confidence_bins(probs: np.ndarray) -> np.ndarray:
    """Bin index (0..100) of each confidence: the largest j with j/100 <= p.

    Comparisons are made in float64 against j/100, as the reference does.
    """
    p = np.asarray(probs, dtype=np.float64)
    if np.isnan(p).any() or (p < 0).any():
        raise ValueError("confidences must be non-negative numbers (found NaN or a negative value)")
    return np.searchsorted(BIN_EDGES, p, side="right") - 1


def bin_counts(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [num_classes, 101]: number of images of each class in each confidence bin."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}.."
                         f"{labels.max()}; is num_classes right?")
    flat = labels * NUM_BINS + confidence_bins(probs)
    return np.bincount(flat, minlength=num_classes * NUM_BINS).reshape(num_classes, NUM_BINS)


def class_thresholds(counts: np.ndarray, num_image: int, *, min_threshold: float = 0.3,
                     max_prob: float = 2.0, use_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (threshold float64 [C], total int64 [C]) from `bin_counts` output.

    total_c is the number of images in the bins from the threshold up to (not including)
    max_prob: the count the balancing divides by.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[1] != NUM_BINS:
        raise ValueError(f"counts must have shape [num_classes, {NUM_BINS}], got {counts.shape}")
    if num_image < 1:
        raise ValueError(f"num_image must be at least 1, got {num_image}")
    lowest = _grid_index(min_threshold, "min_threshold")
    if max_prob <= BIN_EDGES[lowest]:
        raise ValueError(f"max_prob={max_prob} leaves no bin at or above "
                         f"min_threshold={min_threshold}")
    thresholds = np.empty(len(counts), dtype=np.float64)
    totals = np.zeros(len(counts), dtype=np.int64)
    for c, row in enumerate(counts):
        total, chosen = 0, lowest
        for j in range(NUM_BINS - 1, lowest - 1, -1):
            if BIN_EDGES[j] >= max_prob:
                continue
            total += int(row[j])
            if not use_all and total >= num_image:
                chosen = j
                break
        thresholds[c], totals[c] = BIN_EDGES[chosen], total
    return thresholds, totals


def copy_rates(totals: np.ndarray, num_image: int, *, upsample: bool = True,
               use_all: bool = False) -> np.ndarray:
    """Expected copies per kept image of each class: num_image / total_c (0 for empty classes)."""
    totals = np.asarray(totals, dtype=np.float64)
    if use_all:
        return np.ones_like(totals)
    rates = np.divide(float(num_image), totals, out=np.zeros_like(totals), where=totals > 0)
    return np.minimum(rates, 1.0) if not upsample else rates


def copies_per_image(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray,
                     totals: np.ndarray, num_image: int, uniforms: np.ndarray, *,
                     max_prob: float = 2.0, upsample: bool = True,
                     use_all: bool = False) -> np.ndarray:
    """int64 [N]: how many times each image is written (0 = dropped).

    `uniforms` holds one U[0, 1) draw per image, so the result is a pure function of its inputs;
    an image with rate r gets floor(r) copies plus one more when its draw is below r - floor(r).
    """
    labels = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    uniforms = np.asarray(uniforms, dtype=np.float64)
    if not labels.shape == p.shape == uniforms.shape:
        raise ValueError(f"labels, probs and uniforms need one entry per image, got shapes "
                         f"{labels.shape}, {p.shape}, {uniforms.shape}")
    selected = (p >= np.asarray(thresholds)[labels]) & (p <= max_prob)
    rate = copy_rates(totals, num_image, upsample=upsample, use_all=use_all)[labels]
    whole = np.floor(rate)
    copies = whole + (uniforms < rate - whole)
    return np.where(selected, copies, 0).astype(np.int64)


def sparse_counts(counts: np.ndarray) -> dict:
    """`bin_counts` output as a small JSON object: the non-zero cells (flat index, count)."""
    counts = np.asarray(counts, dtype=np.int64)
    flat = counts.reshape(-1)
    nonzero = np.flatnonzero(flat)
    return {"num_classes": int(counts.shape[0]), "num_bins": int(counts.shape[1]),
            "cells": nonzero.tolist(), "counts": flat[nonzero].tolist()}


def sparse_cells(sparse: dict) -> tuple[np.ndarray, np.ndarray]:
    """(flat cell indices, counts) of a `sparse_counts` object's non-zero cells."""
    if sparse["num_bins"] != NUM_BINS:
        raise ValueError(f"a histogram of {sparse['num_bins']} bins, expected {NUM_BINS}")
    return (np.asarray(sparse["cells"], dtype=np.int64),
            np.asarray(sparse["counts"], dtype=np.int64))


def dense_counts(sparse: dict) -> np.ndarray:
    """The int64 [num_classes, NUM_BINS] array of a `sparse_counts` object."""
    cells, counts = sparse_cells(sparse)
    flat = np.zeros(sparse["num_classes"] * NUM_BINS, dtype=np.int64)
    flat[cells] = counts
    return flat.reshape(sparse["num_classes"], NUM_BINS)
