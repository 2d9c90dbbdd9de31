"""report.md from a run directory's manifest and eval results."""

import json

import pytest

from noisy_student.report import write_report


def test_report_lists_each_iteration(tmp_path):
    stages = {
        "teacher": {"model": "b0", "seconds": 125.0},
        "teacher/eval": {"top1": 0.5573, "top5": 0.9, "num_examples": 1000, "seconds": 3.0},
        "iter1/label": {"seconds": 60.0},
        "iter1/student": {"model": "b1", "seconds": 61.0},
        "iter1/eval": {"top1": 0.5594, "top5": 0.91, "num_examples": 1000, "seconds": 3.0},
        "iter2/student": {"model": "b2", "seconds": 10.0},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    (tmp_path / "eval" / "iter1").mkdir(parents=True)
    (tmp_path / "eval" / "iter1" / "imagenet_c.json").write_text(json.dumps({"mCE": 0.283}))
    text = open(write_report(str(tmp_path))).read()
    assert "| teacher | b0 | 55.73% | 90.00% | - | 1000 | 2m05s |" in text
    # Gain: 55.94 - 55.73 = +0.21 points.
    assert "| student 1 | b1 | 55.94% | 91.00% | +0.21 | 1000 | 1m01s |" in text
    assert "| student 2 | b2 | - | - | - | - | 0m10s |" in text  # not evaluated yet
    assert "| student 1 | imagenet_c | mCE | 28.30% |" in text
    from noisy_student import evaluate_cli

    result = evaluate_cli.run(evaluate_cli.EvalOptions(model=str(tmp_path), benchmark="report"))
    assert open(result["report"]).read() == text
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_report(str(tmp_path / "eval"))


# ----------------------------------------------------------------------------- class names


NAMES = ["airplane", "automobile", "bird"]


def _tick_texts(axis):
    return [label.get_text() for label in axis.get_ticklabels()]


def test_confusion_matrix_ticks_are_class_names():
    import numpy as np

    from noisy_student import robustness

    confusion = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 4]])
    ax = robustness.confusion_figure(confusion, NAMES).axes[0]
    assert _tick_texts(ax.xaxis) == NAMES and _tick_texts(ax.yaxis) == NAMES


def test_filter_histogram_titles_name_the_classes():
    import numpy as np

    from noisy_student.filtering import NUM_BINS, histogram_figure

    counts = np.zeros((3, NUM_BINS), np.int64)
    counts[:, 50] = [5, 7, 9]
    thresholds = np.full(3, 0.3)
    titles = [ax.get_title() for ax in histogram_figure(counts, thresholds, NAMES).axes]
    assert titles == ["airplane: 5 images", "automobile: 7 images", "bird: 9 images"]
    titles = [ax.get_title() for ax in histogram_figure(counts, thresholds).axes]
    assert titles == ["0: 5 images", "1: 7 images", "2: 9 images"]  # no names: indices
    # Many classes: one heat-map row per class, named.
    many = np.ones((30, NUM_BINS), np.int64)
    names = [f"class_{c}" for c in range(30)]
    ax = histogram_figure(many, np.full(30, 0.3), names).axes[0]
    assert _tick_texts(ax.yaxis) == names


def test_class_names_fall_back_to_indices(tmp_path, caplog):
    from noisy_student import plots

    (tmp_path / "train-00000-of-00001").write_bytes(b"")
    assert plots.labels_file_beside(str(tmp_path / "train-*")) is None
    assert plots.class_names_or_none(plots.labels_file_beside(str(tmp_path / "train-*")), 3) \
        is None
    (tmp_path / "labels.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(NAMES)))
    path = plots.labels_file_beside(str(tmp_path / "train-*"))
    assert path == str(tmp_path / "labels.txt")
    assert plots.class_names_or_none(path, 3) == NAMES
    assert plots.class_names_or_none(path, 4) is None  # wrong count: a warning, indices
    assert "lists 3 classes, not 4" in caplog.text
    assert plots.class_labels(None, 2) == ["0", "1"]
