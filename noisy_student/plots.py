"""The one place figures become PNG files, and the class names plots label classes with.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot, so no global backend or figure
registry): the functions that draw return the figure, which tests inspect (tick labels, titles)
before `write_png` writes it under a temporary name and renames it.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence

import tensorflow as tf

from noisy_student.atomic_io import write_bytes_atomic

LABELS_FILE = "labels.txt"  # as written by noisy_student.data.shards.write_labels

log = logging.getLogger(__name__)


def new_figure(width: float, height: float, dpi: int = 100):
    """An empty figure of ``width`` x ``height`` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)


def write_png(fig, path: str, *, tight: bool = True) -> str:
    """Lays out (``tight``) and writes ``fig`` as PNG at ``path`` (temp name, then rename),
    creating its folder."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if os.path.dirname(path):
        tf.io.gfile.makedirs(os.path.dirname(path))
    canvas = FigureCanvasAgg(fig)
    if tight:
        fig.tight_layout()
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    write_bytes_atomic(path, buffer.getvalue())
    return path


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
    from noisy_student.eval_sources import read_class_names

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


def class_labels(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """What plots print for each class: its name, else its index."""
    return list(names) if names is not None else [str(c) for c in range(num_classes)]
