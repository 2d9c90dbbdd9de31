"""report.md for a finished (or partial) run directory: accuracy per iteration for the teacher
and each student (table and PNG), the benchmark results recorded for its models (robustness,
``noisy-student-eval``), and for each iteration a grid of the pseudo-labeled images the filter
kept, one row per class. The tables are views of the manifest's rows (`rows.result_rows`).

    noisy-student-eval --model=runs/cifar10_4000 --benchmark=report
    python -c "from noisy_student.reporting.report import write_report; \
        write_report('runs/cifar10_4000')"

A loop run (``noisy-student --mode=loop``) writes it at its end. PNGs go to ``<run>/report/``;
classes are named from the run's ``labels.txt`` (class indices without one).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from noisy_student import plots
from noisy_student.atomic_io import read_json, write_text_atomic
from noisy_student.data import labels_file
from noisy_student.data.records import IMAGE_KEY, PSEUDO_LABEL_KEY
from noisy_student.data.reference_records import INDEX_KEY, SOURCE_KEY
from noisy_student.data.tfrecord_source import list_files
from noisy_student.pseudo_labels.filtering import HISTOGRAM_NAME, OUTPUT_SPLIT, STATS_NAME
from noisy_student.reporting.rows import (
    BENCHMARK,
    ResultRow,
    clean_evaluations,
    model_label,
    percent,
    result_rows,
    training,
)
from noisy_student.run import layout
from noisy_student.run.layout import LABEL, MANIFEST, filtered_dir, stage_name

REPORT_NAME = "report.md"
FIGURE_DIR = "report"
ACCURACY_PNG = "accuracy.png"
SAMPLES_PER_CLASS = 8
MAX_SAMPLE_ROWS = 40  # classes shown in a sample grid; more are thinned evenly
MAX_CELL = 96  # pixels; larger images are shrunk to this side in the grid
EMPTY_PIXEL = 255  # cells without an image are white


def _pct(value) -> str:
    return percent(value, 2)


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def iterations(rows: Sequence[ResultRow]) -> list[int]:
    """Iterations the run's stages reach (0 = teacher), in order."""
    return layout.iterations(row.name for row in rows if row.kind != BENCHMARK)


# ----------------------------------------------------------------------------- accuracy


def accuracy_figure(rows: Sequence[ResultRow]):
    """Top-1 and top-5 (%) of the teacher and each student, or None when none was evaluated."""
    points = [(row.model, row.values) for row in clean_evaluations(rows)
              if row.values.get("top1") is not None]
    if not points:
        return None
    fig = plots.new_figure(max(5, 1.3 * len(points) + 2), 4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(points))
    for key, label, style in (("top1", "top-1", "o-"), ("top5", "top-5", "s--")):
        values = [100 * r[key] if r.get(key) is not None else np.nan for _, r in points]
        ax.plot(x, values, style, label=label)
        for xi, value in zip(x, values, strict=True):
            if not np.isnan(value):
                ax.annotate(f"{value:.1f}", (xi, value), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xticks(x, [name for name, _ in points])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy per iteration")
    ax.legend()
    return fig


# ----------------------------------------------------------------------------- kept samples


def grid_classes(num_classes: int, max_rows: int = MAX_SAMPLE_ROWS) -> list[int]:
    """The classes a sample grid shows: all, or ``max_rows`` spread evenly over them."""
    if num_classes <= max_rows:
        return list(range(num_classes))
    return sorted({int(c) for c in np.linspace(0, num_classes - 1, max_rows).round()})


def _reference_images(keys: set[tuple[str, int]], source_pattern: str | None
                      ) -> dict[tuple[str, int], bytes]:
    """The encoded images that reference records name (file basename, record index), read
    from the front of their unlabeled files (`source_pattern`); {} without it."""
    by_name = {os.path.basename(p): p for p in list_files(source_pattern)} if keys and \
        source_pattern else {}
    images = {}
    for name in {n for n, _ in keys} & set(by_name):
        wanted = {i for n, i in keys if n == name}
        records = tf.data.TFRecordDataset(by_name[name]).take(max(wanted) + 1)
        for index, raw in enumerate(records.as_numpy_iterator()):
            if index in wanted:
                feature = tf.train.Example.FromString(raw).features.feature[IMAGE_KEY]
                images[(name, index)] = feature.bytes_list.value[0]
    return images


def kept_samples(filtered_dir: str, classes: Sequence[int],
                 per_class: int = SAMPLES_PER_CLASS,
                 wanted: dict[int, int] | None = None,
                 source_pattern: str | None = None) -> dict[int, list[bytes]]:
    """{class: up to ``per_class`` distinct encoded images} of ``classes`` from the filter's
    records, the first ones in shard order (deterministic: the filter's output is). Copies of
    an upsampled image count once. Reading stops as soon as every class has what it can get:
    ``per_class``, or fewer where ``wanted`` (class -> distinct images kept) says so. Reference
    records take their images from ``source_pattern`` (the unlabeled files; left out without
    it)."""
    need = {c: min(per_class, (wanted or {}).get(c, per_class)) for c in classes}
    found: dict[int, list[bytes]] = {c: [] for c in classes}
    pending = {c for c, n in need.items() if n > 0}
    for path in sorted(tf.io.gfile.glob(os.path.join(filtered_dir, f"{OUTPUT_SPLIT}-*"))):
        if not pending:
            break
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            features = tf.train.Example.FromString(raw).features.feature
            label = int(features[PSEUDO_LABEL_KEY].int64_list.value[0])
            if label not in pending:
                continue
            image = (features[IMAGE_KEY].bytes_list.value[0] if IMAGE_KEY in features else
                     (features[SOURCE_KEY].bytes_list.value[0].decode(),
                      int(features[INDEX_KEY].int64_list.value[0])))
            if image not in found[label]:
                found[label].append(image)
                if len(found[label]) >= need[label]:
                    pending.discard(label)
                    if not pending:
                        break
    named = _reference_images({k for keys in found.values() for k in keys
                               if isinstance(k, tuple)}, source_pattern)
    return {c: [named.get(k) if isinstance(k, tuple) else k for k in keys
                if not isinstance(k, tuple) or k in named] for c, keys in found.items()}


def _fit(pixels: np.ndarray, cell: int) -> np.ndarray:
    """An image as uint8 [cell, cell, 3], resized (antialiased) unless it already fits."""
    if pixels.shape[:2] == (cell, cell):
        return pixels
    resized = tf.image.resize(pixels, (cell, cell), antialias=True).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def sample_grid(samples: dict[int, list[bytes]], classes: Sequence[int],
                per_class: int = SAMPLES_PER_CLASS, cell: int | None = None) -> np.ndarray:
    """uint8 [rows * cell, per_class * cell, 3]: row r holds the images of ``classes[r]`` left
    to right, resized to ``cell`` pixels square (default: the largest image side, at most
    MAX_CELL); cells without an image are white."""
    decoded = {c: [tf.io.decode_image(image, channels=3, expand_animations=False).numpy()
                   for image in samples.get(c, [])[:per_class]] for c in classes}
    if cell is None:
        sides = [max(p.shape[:2]) for images in decoded.values() for p in images]
        cell = min(MAX_CELL, max(sides, default=32))
    grid = np.full((len(classes) * cell, per_class * cell, 3), EMPTY_PIXEL, np.uint8)
    for row, c in enumerate(classes):
        for col, pixels in enumerate(decoded[c]):
            grid[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = _fit(pixels, cell)
    return grid


def grid_figure(grid: np.ndarray, row_labels: Sequence[str], title: str = ""):
    """The sample grid with one y tick label per row (the class). Margins are fixed (write it
    with ``tight=False``): 2.2 inches on the left for the row labels."""
    rows = len(row_labels)
    cell = grid.shape[0] // max(rows, 1)
    scale = max(1, 64 // max(cell, 1))  # small images are drawn at least 64 pixels wide
    dpi, left, top, pad = 100, 2.2, 0.5, 0.15
    width = grid.shape[1] * scale / dpi
    height = grid.shape[0] * scale / dpi
    fig = plots.new_figure(left + width + pad, top + height + pad, dpi=dpi)
    ax = fig.add_axes((left / (left + width + pad), pad / (top + height + pad),
                       width / (left + width + pad), height / (top + height + pad)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([(r + 0.5) * cell - 0.5 for r in range(rows)], list(row_labels), fontsize=8)
    ax.set_xticks([])
    ax.set_title(title or "images the filter kept", fontsize=9)
    return fig


def samples_figure(run_dir: str, iteration: int, class_names: Sequence[str] | None = None,
                   per_class: int = SAMPLES_PER_CLASS) -> tuple[object, dict] | None:
    """(grid figure of the images the filter kept in ``<run>/iterN/filtered``, the filter's
    stats), or None when that iteration has no finished filter output."""
    filtered = os.path.join(run_dir, filtered_dir(iteration))
    stats = read_json(os.path.join(filtered, STATS_NAME))
    if stats is None:
        return None
    num_classes = len(stats["kept_per_class"])
    names = plots.class_labels(class_names, num_classes)
    classes = grid_classes(num_classes)
    kept = dict(enumerate(stats["kept_per_class"]))
    label_settings = (read_json(os.path.join(run_dir, MANIFEST)) or {}).get("settings", {}).get(
        stage_name(LABEL, iteration), {})
    samples = kept_samples(filtered, classes, per_class, wanted=kept,
                           source_pattern=label_settings.get("unlabel_data"))
    grid = sample_grid(samples, classes, per_class)
    labels = [f"{names[c]} ({kept[c]} kept)" for c in classes]
    title = (f"iteration {iteration}: up to {per_class} of the images kept per class"
             + (f" ({len(classes)} of {num_classes} classes)" if len(classes) < num_classes
                else ""))
    return grid_figure(grid, labels, title), stats


# ----------------------------------------------------------------------------- markdown


def _benchmark_lines(rows: Sequence[ResultRow]) -> list[str]:
    """The recorded benchmark results: a table of their headline metrics, then their figures."""
    recorded = [row for row in rows if row.kind == BENCHMARK]
    if not recorded:
        return []
    table = []
    for row in recorded:
        partial = row.values.get("partial")
        metric = f"{row.metric} (partial: {partial})" if partial else row.metric
        table.append(f"| {row.model} | {row.benchmark} | {metric} | {_pct(row.value)} |")
    figures = [f"![{row.model}: {os.path.basename(path)}]({path})"
               for row in recorded for path in row.values.get("figures", [])]
    return ["", "## Robustness and other evaluations (eval/)", "",
            "| model | benchmark | metric | value |", "| --- | --- | --- | --- |", *table,
            *(["", *figures] if figures else [])]


def _samples_lines(run_dir: str, rows: Sequence[ResultRow],
                   class_names: Sequence[str] | None) -> list[str]:
    lines = []
    for i in iterations(rows)[1:]:
        drawn = samples_figure(run_dir, i, class_names)
        if drawn is None:
            continue
        figure, stats = drawn
        path = plots.write_png(figure, os.path.join(run_dir, FIGURE_DIR, f"iter{i}_kept.png"),
                               tight=False)
        lines += ["", f"### Iteration {i}: {stats['num_kept']} of {stats['num_input_records']} "
                  f"pseudo-labeled images kept, {stats['num_written']} records written", "",
                  f"![iteration {i} kept images]({os.path.relpath(path, run_dir)})"]
        histogram = f"{filtered_dir(i)}/{stats.get('histogram', HISTOGRAM_NAME)}"
        if tf.io.gfile.exists(os.path.join(run_dir, histogram)):
            lines += ["", f"![iteration {i} teacher confidence per class]({histogram})"]
    return ["", "## Images the filter kept", *lines] if lines else []


def report_markdown(run_dir: str, class_names: Sequence[str] | None = None) -> str:
    """The report's text; writes its PNGs under ``<run_dir>/report/`` on the way."""
    manifest = read_json(os.path.join(run_dir, MANIFEST))
    if manifest is None:
        raise FileNotFoundError(f"{run_dir}: no manifest.json (not a run directory)")
    rows = result_rows(manifest)
    trained = training(rows)
    evaluated = {row.iteration: row.values for row in clean_evaluations(rows)}
    lines = [f"# Run report: {os.path.basename(os.path.normpath(run_dir))}", "",
             "| iteration | model | top-1 | top-5 | gain over its teacher (pts) | eval images "
             "| training time |", "| --- | --- | --- | --- | --- | --- | --- |"]
    previous = None
    for i in iterations(rows):
        train = trained[i].values if i in trained else {}
        result = evaluated.get(i, {})
        top1 = result.get("top1")
        gain = "-" if top1 is None or previous is None else f"{100 * (top1 - previous):+.2f}"
        lines.append(f"| {model_label(i)} | {train.get('model', '-')} | {_pct(top1)} | "
                     f"{_pct(result.get('top5'))} | {gain} | {result.get('num_examples', '-')} "
                     f"| {_minutes(train.get('seconds'))} |")
        previous = top1 if top1 is not None else previous
    figure = accuracy_figure(rows)
    if figure is not None:
        plots.write_png(figure, os.path.join(run_dir, FIGURE_DIR, ACCURACY_PNG))
        lines += ["", f"![accuracy per iteration]({FIGURE_DIR}/{ACCURACY_PNG})"]
    lines += _benchmark_lines(rows)
    lines += _samples_lines(run_dir, rows, class_names)
    lines += ["", "## Stages", "", "| stage | wall time |", "| --- | --- |"]
    lines += [f"| {row.name} | {_minutes(row.seconds)} |" for row in rows
              if row.kind != BENCHMARK]
    return "\n".join(lines) + "\n"


def run_class_names(run_dir: str, labels: str | None = None) -> list[str] | None:
    """Class names from ``labels`` or the run's ``labels.txt``; None (plots show indices)
    without a usable file. They are checked against the classes the run's filter saw."""
    path = labels or os.path.join(run_dir, labels_file.LABELS_FILE)
    stats_files = sorted(tf.io.gfile.glob(os.path.join(run_dir, filtered_dir("*"), STATS_NAME)))
    num_classes = len(read_json(stats_files[0])["kept_per_class"]) if stats_files else None
    return labels_file.class_names_or_none(path, num_classes)


def write_report(run_dir: str, labels: str | None = None) -> str:
    """Writes ``<run_dir>/report.md`` (atomically) and its PNGs; returns the report's path.
    ``labels`` overrides the run's ``labels.txt``."""
    path = os.path.join(run_dir, REPORT_NAME)
    write_text_atomic(path, report_markdown(run_dir, run_class_names(run_dir, labels)))
    return path
