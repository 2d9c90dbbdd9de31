"""The one place figures become PNG files, and what plots label classes with (names from
``noisy_student.data.labels_file``, else indices).

Figures are built on ``matplotlib.figure.Figure`` (no pyplot, so no global backend or figure
registry): the functions that draw return the figure, which tests inspect (tick labels, titles)
before `write_png` writes it under a temporary name and renames it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import tensorflow as tf

from noisy_student.atomic_io import write_bytes_atomic


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


def class_labels(names: Sequence[str] | None, num_classes: int) -> list[str]:
    """What plots print for each class: its name, else its index."""
    return list(names) if names is not None else [str(c) for c in range(num_classes)]
