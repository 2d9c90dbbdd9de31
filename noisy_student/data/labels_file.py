"""The labels file, ``labels.txt``: class names in label order, beside a data set's records and
copied into a run directory. The one place it is named, written, found and read.

Lines are ``<label> <class name>`` (as ``noisy-student-build-tfrecords`` writes them, labels 0-
or 1-based, contiguous) or just ``<class name>`` (line order = label order).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import tensorflow as tf

from noisy_student.atomic_io import write_text_atomic

LABELS_FILE = "labels.txt"

log = logging.getLogger(__name__)


def format_labels(class_names: Sequence[str], label_base: int) -> str:
    """One ``<label> <class name>`` line per class, label = index + label_base; read back with
    :func:`read_class_names`."""
    return "".join(f"{i + label_base} {name}\n" for i, name in enumerate(class_names))


def write_labels(output_dir: str, class_names: Sequence[str], label_base: int) -> str:
    """Writes ``labels.txt`` atomically; an existing one must hold the same classes (another
    split of the same data set), otherwise the splits would disagree on label numbers."""
    path = os.path.join(output_dir, LABELS_FILE)
    text = format_labels(class_names, label_base)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            if f.read() != text:
                raise FileExistsError(
                    f"{path} lists other classes or labels than this input; splits written to "
                    "one directory must share their classes (remove it or use another dir)")
        return path
    tf.io.gfile.makedirs(output_dir)
    write_text_atomic(path, text)
    return path


def copy_labels(source: str, target: str) -> bool:
    """Copies the labels file ``source`` to ``target`` (atomically) unless ``target`` already
    holds the same text; returns whether it wrote."""
    with tf.io.gfile.GFile(source) as f:
        text = f.read()
    if tf.io.gfile.exists(target):
        with tf.io.gfile.GFile(target) as f:
            if f.read() == text:
                return False
    write_text_atomic(target, text)
    return True


def read_class_names(path: str) -> list[str]:
    """Class names in label order from a labels file. Empty lines are ignored."""
    with tf.io.gfile.GFile(path, "r") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError(f"{path}: the labels file is empty")
    parts = [line.split(None, 1) for line in lines]
    if all(len(p) == 2 and p[0].lstrip("-").isdigit() for p in parts):
        numbered = sorted((int(p[0]), p[1]) for p in parts)
        labels = [n for n, _ in numbered]
        if labels != list(range(labels[0], labels[0] + len(labels))):
            raise ValueError(f"{path}: labels must be contiguous integers, got {labels[:10]}...")
        return [name for _, name in numbered]
    return lines


def labels_file_beside(data: str | None) -> str | None:
    """``labels.txt`` in the folder of the first file matching ``data`` (a pattern, or
    comma-separated patterns: the first one), if any (tfds: specs and class-folder trees have
    none)."""
    if not data or data.startswith("tfds:"):
        return None
    files = sorted(tf.io.gfile.glob(data.split(",")[0].strip()))
    if not files:
        return None
    candidate = os.path.join(os.path.dirname(files[0]), LABELS_FILE)
    return candidate if tf.io.gfile.exists(candidate) else None


def class_names_or_none(path: str | None, num_classes: int | None) -> list[str] | None:
    """The class names in ``path`` (a labels file), or None when it is missing, and None with a
    warning when it is unreadable or lists another number of classes than ``num_classes``
    (None: not checked): plots then fall back to class indices."""
    if not path or not tf.io.gfile.exists(path):
        return None
    try:
        names = read_class_names(path)
    except ValueError as err:
        log.warning("%s; plots show class indices", err)
        return None
    if num_classes is not None and len(names) != num_classes:
        log.warning("%s lists %d classes, not %d; plots show class indices", path, len(names),
                    num_classes)
        return None
    return names
