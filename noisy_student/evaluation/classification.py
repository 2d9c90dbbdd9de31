"""Accuracy of one model on a labeled data set: top-1/top-5 over all classes and per class, the
confusion matrix and its figure (``evaluate_classification``), and the 200-class ImageNet-A and
ImageNet-R subsets (``evaluate_subset``). Results are JSON-ready dicts, written as
``<name>.json`` (and PNG figures) under ``output_dir`` when given.

    result = evaluate_classification(model, dataset, num_classes=10, output_dir="runs/x/eval")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from noisy_student.atomic_io import write_json_atomic
from noisy_student.evaluation import metrics, sources
from noisy_student.evaluation.loading import model_scores
from noisy_student.plots import new_figure, write_png

MAX_CONFUSION_CLASSES = 100


def evaluate(model, dataset, *, class_indices: Sequence[int] | None = None) -> dict:
    """Top-1 and top-5 accuracy of `model` (inference mode) over `dataset`.

    `dataset` yields (images, labels) batches, labels one-hot [B, C] or integer [B]. With
    `class_indices` (e.g. `IMAGENET_A_INDICES`) the model's scores are restricted to those columns
    and the labels index into that subset. Ties at the top-k boundary count as correct
    (`metrics.true_class_ranks`). Returns {"top1", "top5", "num_examples"}.
    """
    counts = confusion_and_topk(model, dataset, None, class_indices=class_indices)
    total = counts["num_examples"]
    return {"top1": counts["top1_hits"] / total, "top5": counts["top5_hits"] / total,
            "num_examples": total}


def confusion_and_topk(model, dataset, num_classes: int | None, *,
                       class_indices: Sequence[int] | None = None,
                       max_steps: int | None = None, scores_fn=None) -> dict:
    """One pass over (images, labels) batches (labels integer or one-hot): top-1/top-5 hit
    counts (`metrics.true_class_ranks`) and, given ``num_classes``, the confusion matrix [true,
    predicted] of the argmax (else None). ``scores_fn`` (from `loading.model_scores`) lets many
    passes share one traced function."""
    scores_fn = scores_fn or model_scores(model, class_indices)
    confusion = None if num_classes is None else np.zeros((num_classes, num_classes), np.int64)
    hits = np.zeros(2, np.int64)
    total = 0
    for step, (images, labels) in enumerate(dataset):
        if max_steps is not None and step >= max_steps:
            break
        scores = scores_fn(images).numpy()
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        rank = metrics.true_class_ranks(scores, labels)
        hits += [(rank < 1).sum(), (rank < 5).sum()]
        total += len(labels)
        if confusion is not None:
            if scores.shape[1] != num_classes:
                raise ValueError(f"the model gives {scores.shape[1]} scores per image, expected "
                                 f"{num_classes} classes")
            np.add.at(confusion, (labels, scores.argmax(axis=1)), 1)
    if total == 0:
        raise ValueError("the evaluation data yielded no examples")
    return {"confusion": confusion, "top1_hits": int(hits[0]), "top5_hits": int(hits[1]),
            "num_examples": total}


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str = ""):
    """Row-normalized confusion matrix, classes labelled by ``class_names``; up to 100 classes."""
    n = len(confusion)
    if n > MAX_CONFUSION_CLASSES:
        raise ValueError(f"a confusion matrix of {n} classes is unreadable; the limit is "
                         f"{MAX_CONFUSION_CLASSES}")
    rows = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    side = min(4 + 0.18 * n, 22)
    fig = new_figure(side, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(n)
    font = max(4, 10 - n // 15)
    ax.set_xticks(ticks, [str(c) for c in class_names], rotation=90, fontsize=font)
    ax.set_yticks(ticks, [str(c) for c in class_names], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if normalized[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    return fig


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str,
                          title: str = "") -> str:
    """`confusion_figure` as a PNG at ``path`` (atomic write); returns the path."""
    return write_png(confusion_figure(confusion, class_names, title), path)


def evaluate_classification(model, dataset, *, num_classes: int,
                            class_names: Sequence[str] | None = None,
                            class_indices: Sequence[int] | None = None,
                            output_dir: str | None = None, name: str = "clean",
                            max_steps: int | None = None, extra: Mapping | None = None) -> dict:
    """Top-1/top-5, per-class accuracy and confusion matrix of ``model`` over ``dataset``
    (batches of images and int or one-hot labels; ``class_indices`` restricts the scores, and
    then labels index that subset).

    Writes ``<output_dir>/<name>.json`` and, for at most 100 classes,
    ``<output_dir>/<name>_confusion.png``. Per-class accuracy is null for classes without
    examples.
    """
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    counts = confusion_and_topk(model, dataset, num_classes, class_indices=class_indices,
                                max_steps=max_steps)
    confusion = counts["confusion"]
    support = confusion.sum(axis=1)
    per_class = {names[i]: (float(confusion[i, i] / support[i]) if support[i] else None)
                 for i in range(num_classes)}
    n = counts["num_examples"]
    result = {"benchmark": name, "top1": counts["top1_hits"] / n, "top5": counts["top5_hits"] / n,
              "num_examples": n, "num_classes": num_classes, "per_class_accuracy": per_class,
              "per_class_examples": {names[i]: int(support[i]) for i in range(num_classes)},
              **(dict(extra) if extra else {})}
    if output_dir:
        tf.io.gfile.makedirs(output_dir)
        if num_classes <= MAX_CONFUSION_CLASSES:
            result["confusion_matrix"] = confusion.tolist()
            result["confusion_png"] = plot_confusion_matrix(
                confusion, names, os.path.join(output_dir, f"{name}_confusion.png"),
                title=f"{name}: top-1 {100 * result['top1']:.2f}% of {n}")
        write_json_atomic(os.path.join(output_dir, f"{name}.json"), result)
    return result


def evaluate_subset(model, benchmark: str, source: str | None, *, image_size: int,
                    batch_size: int = 64, small_images: bool = False,
                    output_dir: str | None = None, max_steps: int | None = None,
                    strict: bool = False) -> dict:
    """ImageNet-A or ImageNet-R accuracy of a 1000-class model, scores restricted to the 200
    classes. ``source`` is the released folder tree, a ``tfds:`` spec or None (TFDS default)."""
    dataset = sources.subset_source(benchmark, source, image_size=image_size,
                                         batch_size=batch_size, small_images=small_images,
                                         strict=strict)
    wnids = sources.imagenet_wnids()
    indices = sources.SUBSET_INDICES[benchmark]
    return evaluate_classification(
        model, dataset, num_classes=200, class_names=[wnids[i] for i in indices],
        class_indices=indices, output_dir=output_dir, name=benchmark, max_steps=max_steps,
        extra={"source": source or f"tfds:{sources.TFDS_NAMES[benchmark]}"})
