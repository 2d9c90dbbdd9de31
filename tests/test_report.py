"""report.md from a run directory's manifest: its stages and recorded evaluations."""

import json

import pytest

from noisy_student.reporting.report import write_report
from noisy_student.run.directory import record_evaluation


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
    # A JSON in eval/ that the manifest does not record is not the run's result.
    (tmp_path / "eval" / "iter1" / "imagenet_r.json").write_text(json.dumps({"top1": 0.5}))
    record_evaluation(str(tmp_path), 1, "imagenet_c", {"mCE": 0.283, "partial": "severities 1"})
    text = open(write_report(str(tmp_path))).read()
    assert "| teacher | b0 | 55.73% | 90.00% | - | 1000 | 2m05s |" in text
    # Gain: 55.94 - 55.73 = +0.21 points.
    assert "| student 1 | b1 | 55.94% | 91.00% | +0.21 | 1000 | 1m01s |" in text
    assert "| student 2 | b2 | - | - | - | - | 0m10s |" in text  # not evaluated yet
    assert "| student 1 | imagenet_c | mCE (partial: severities 1) | 28.30% |" in text
    assert "imagenet_r" not in text
    from noisy_student.cli import evaluate

    result = evaluate.run(evaluate.EvalOptions(model=str(tmp_path), benchmark="report"))
    assert open(result["report"]).read() == text
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_report(str(tmp_path / "eval"))


def test_table_and_report_are_views_of_the_same_rows(tmp_path):
    """The manifest on disk (keys sorted) gives rows in run order, its recorded evaluations
    after the stages; the final table and report.md show the same values."""
    from noisy_student.reporting.rows import BENCHMARK, result_rows
    from noisy_student.reporting.summary import format_table

    stages = {
        "export": {"export_dir": "x", "seconds": 1.0},
        "iter1/eval": {"top1": 0.46, "top5": 0.9, "num_examples": 50, "seconds": 2.0},
        "iter1/student": {"model": "b0", "steps": 10, "seconds": 60.0},
        "teacher": {"model": "b0", "steps": 10, "seconds": 60.0},
        "teacher/eval": {"top1": 0.40, "top5": 0.8, "num_examples": 50, "seconds": 2.0},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}, sort_keys=True))
    record_evaluation(str(tmp_path), 0, "imagenet_a", {"top1": 0.123, "num_examples": 7,
                                                       "seconds": 5.0})
    rows = result_rows(json.loads((tmp_path / "manifest.json").read_text()))
    assert [row.name for row in rows] == ["teacher", "teacher/eval", "iter1/student",
                                          "iter1/eval", "export", "teacher/eval/imagenet_a"]
    assert (rows[-1].kind, rows[-1].model, rows[-1].metric, rows[-1].value) == (
        BENCHMARK, "teacher", "top1", 0.123)
    table = format_table(rows)
    last = table.splitlines()[-4].split(" | ")
    assert [cell.strip() for cell in last] == ["teacher/eval/imagenet_a",
                                               "imagenet_a: top1 12.3% on 7 images", "5"]
    assert "teacher top-1 40.0% -> student 1 top-1 46.0% (+6.0 points)" in table
    assert [line.split(" | ")[0].strip() for line in table.splitlines()[2:7]] == [
        "teacher", "teacher/eval", "iter1/student", "iter1/eval", "export"]
    text = open(write_report(str(tmp_path))).read()
    assert "| teacher | imagenet_a | top1 | 12.30% |" in text
    assert "| student 1 | b0 | 46.00% | 90.00% | +6.00 | 50 | 1m00s |" in text


# ----------------------------------------------------------------------------- class names


NAMES = ["airplane", "automobile", "bird"]


def _tick_texts(axis):
    return [label.get_text() for label in axis.get_ticklabels()]


def test_confusion_matrix_ticks_are_class_names():
    import numpy as np

    from noisy_student.evaluation import classification

    confusion = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 4]])
    ax = classification.confusion_figure(confusion, NAMES).axes[0]
    assert _tick_texts(ax.xaxis) == NAMES and _tick_texts(ax.yaxis) == NAMES


def test_filter_histogram_titles_name_the_classes():
    import numpy as np

    from noisy_student.pseudo_labels.filtering import NUM_BINS, histogram_figure

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
    from noisy_student.data import labels_file

    (tmp_path / "train-00000-of-00001").write_bytes(b"")
    beside = labels_file.labels_file_beside(str(tmp_path / "train-*"))
    assert beside is None and labels_file.class_names_or_none(beside, 3) is None
    (tmp_path / "labels.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(NAMES)))
    path = labels_file.labels_file_beside(str(tmp_path / "train-*"))
    assert path == str(tmp_path / "labels.txt")
    assert labels_file.class_names_or_none(path, 3) == NAMES
    assert labels_file.class_names_or_none(path, 4) is None  # wrong count: a warning, indices
    assert "lists 3 classes, not 4" in caplog.text
    assert plots.class_labels(None, 2) == ["0", "1"]


# ----------------------------------------------------------------------------- kept samples


def _image(seed, size=8):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _png_bytes(pixels):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def filtered_run(tmp_path):
    """A run directory whose iter1 filter kept 6 distinct images of class 0 (two written twice),
    2 of class 1 and none of class 2, dealt over two shards, plus a third shard of garbage that
    a reader stopping as soon as it has enough never opens."""
    import numpy as np
    import tensorflow as tf

    from noisy_student.data.records import encode_pseudo_labeled

    images = {seed: _image(seed) for seed in range(8)}
    label_of = {0: 0, 1: 0, 2: 1, 3: 0, 4: 0, 5: 1, 6: 0, 7: 0}
    order = [3, 2, 3, 0, 6, 1, 5, 0, 7, 4]  # record order: 3 and 0 are upsampled copies

    def record(seed):
        probs = np.full(3, 0.1, np.float32)
        probs[label_of[seed]] = 0.8
        return encode_pseudo_labeled(_png_bytes(images[seed]), probs)

    filtered = tmp_path / "iter1" / "filtered"
    filtered.mkdir(parents=True)
    shards = [order[:5], order[5:]]
    for index, seeds in enumerate(shards):
        with tf.io.TFRecordWriter(str(filtered / f"train-{index:05d}-of-00003")) as writer:
            for seed in seeds:
                writer.write(record(seed))
    (filtered / "train-00002-of-00003").write_bytes(b"not a TFRecord file")
    stats = {"kept_per_class": [6, 2, 0], "num_kept": 8, "num_input_records": 20,
             "num_written": 10}
    (filtered / "stats.json").write_text(json.dumps(stats))
    stages = {
        "teacher": {"model": "b0", "seconds": 100.0},
        "teacher/eval": {"top1": 0.40, "top5": 0.80, "num_examples": 50, "seconds": 1.0},
        "iter1/filter": {"num_kept": 8, "seconds": 1.0},
        "iter1/student": {"model": "b0", "seconds": 100.0},
        "iter1/eval": {"top1": 0.46, "top5": 0.86, "num_examples": 50, "seconds": 1.0},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    (tmp_path / "labels.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(NAMES)))
    # The first distinct images of each class in record order.
    expected = {0: [3, 0, 6, 1, 7, 4], 1: [2, 5], 2: []}
    return tmp_path, images, expected


def test_grid_rows_hold_the_kept_images_of_each_class(filtered_run):
    import numpy as np

    from noisy_student.reporting import report

    run_dir, images, expected = filtered_run
    per_class = 4
    samples = report.kept_samples(str(run_dir / "iter1" / "filtered"), [0, 1, 2], per_class,
                                  wanted={0: 6, 1: 2, 2: 0})
    grid = report.sample_grid(samples, [0, 1, 2], per_class)
    cell = 8
    assert grid.shape == (3 * cell, per_class * cell, 3)
    for row, c in enumerate([0, 1, 2]):
        for col in range(per_class):
            got = grid[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]
            seeds = expected[c][:per_class]
            if col < len(seeds):
                np.testing.assert_array_equal(got, images[seeds[col]], err_msg=f"{c}, {col}")
            else:
                assert (got == report.EMPTY_PIXEL).all(), (c, col)  # missing: white


def test_grid_resizes_to_the_cell():
    import numpy as np

    from noisy_student.reporting import report

    flat = np.full((20, 12, 3), 77, np.uint8)
    grid = report.sample_grid({0: [_png_bytes(flat)]}, [0], per_class=2, cell=6)
    assert grid.shape == (6, 12, 3)
    assert (grid[:, :6] == 77).all() and (grid[:, 6:] == report.EMPTY_PIXEL).all()


def test_grid_classes_thin_out_many_classes():
    from noisy_student.reporting.report import grid_classes

    assert grid_classes(5, max_rows=10) == [0, 1, 2, 3, 4]
    chosen = grid_classes(1000, max_rows=40)
    assert len(chosen) == 40 and chosen[0] == 0 and chosen[-1] == 999
    assert chosen == sorted(set(chosen))


def test_report_embeds_accuracy_and_kept_images(filtered_run):
    import numpy as np
    from PIL import Image

    from noisy_student.reporting import report
    from noisy_student.reporting.rows import result_rows

    run_dir, _, _ = filtered_run
    (run_dir / "eval" / "iter1").mkdir(parents=True)
    (run_dir / "eval" / "iter1" / "clean_confusion.png").write_bytes(_png_bytes(_image(9)))
    text = open(report.write_report(str(run_dir))).read()
    assert "| student 1 | clean |" not in text and "clean_confusion" not in text
    record_evaluation(str(run_dir), 1, "clean", {
        "top1": 0.4567, "json": "eval/iter1/clean.json",
        "figures": ["eval/iter1/clean_confusion.png"]})
    text = open(report.write_report(str(run_dir))).read()
    assert "| student 1 | clean | top1 | 45.67% |" in text
    assert "confidence_histogram.png" not in text  # the filter drew none here
    (run_dir / "iter1" / "filtered" / "confidence_histogram.png").write_bytes(
        _png_bytes(_image(10)))
    text = open(report.write_report(str(run_dir))).read()
    for png in ("report/accuracy.png", "report/iter1_kept.png", "eval/iter1/clean_confusion.png",
                "iter1/filtered/confidence_histogram.png"):
        assert f"]({png})" in text
        with Image.open(run_dir / png) as image:
            assert image.format == "PNG"
    assert "8 of 20 pseudo-labeled images kept, 10 records written" in text

    fig, stats = report.samples_figure(str(run_dir), 1, NAMES, per_class=4)
    rows = [label.get_text() for label in fig.axes[0].get_yticklabels()]
    assert rows == ["airplane (6 kept)", "automobile (2 kept)", "bird (0 kept)"]
    assert stats["num_kept"] == 8
    # The run's labels.txt names the rows when the report is written from the directory.
    assert report.run_class_names(str(run_dir)) == NAMES
    (run_dir / "labels.txt").unlink()
    fig, _ = report.samples_figure(str(run_dir), 1, report.run_class_names(str(run_dir)))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][0] == "0 (6 kept)"

    rows = result_rows(json.load(open(run_dir / "manifest.json")))
    ax = report.accuracy_figure(rows).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["teacher", "student 1"]
    top1, top5 = (line.get_ydata() for line in ax.get_lines())
    np.testing.assert_allclose(top1, [40.0, 46.0])
    np.testing.assert_allclose(top5, [80.0, 86.0])


def test_loop_end_writes_the_report_and_never_fails_the_run(filtered_run, tmp_path, caplog):
    from noisy_student.cli.main import write_run_report

    run_dir, _, _ = filtered_run
    assert write_run_report(str(run_dir)) == str(run_dir / "report.md")
    assert "report/iter1_kept.png" in (run_dir / "report.md").read_text()
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    assert write_run_report(str(empty)) is None  # logged with the command to retry
    assert "--benchmark=report" in caplog.text and not (empty / "report.md").exists()


def test_stages_are_listed_in_run_order():
    from noisy_student.run.layout import stage_order

    run_order = ["teacher", "teacher/eval", "iter1/label", "iter1/filter", "iter1/student",
                 "iter1/eval", "iter2/label", "iter2/filter", "iter2/student", "iter2/eval",
                 "iter10/label", "export"]
    assert sorted(sorted(run_order), key=stage_order) == run_order


def test_reference_records_show_the_images_they_name(tmp_path, tf):
    """A filter output of reference records: the grid reads the kept images from the
    unlabeled files they name (the label stage's --unlabel_data), and leaves them out
    without those files."""
    import numpy as np

    from noisy_student.data.records import encode_unlabeled
    from noisy_student.data.reference_records import encode_reference, with_copies
    from noisy_student.reporting import report

    images = [_png_bytes(_image(seed)) for seed in range(6)]
    source = tmp_path / "unlabeled-00000-of-00001"
    with tf.io.TFRecordWriter(str(source)) as writer:
        for data in images:
            writer.write(encode_unlabeled(data))
    filtered = tmp_path / "filtered"
    filtered.mkdir()
    kept = {1: 0, 2: 1, 4: 0, 5: 1}  # source index -> class
    with tf.io.TFRecordWriter(str(filtered / "train-00000-of-00001")) as writer:
        for index, label in kept.items():
            probs = np.full(3, 0.1, np.float32)
            probs[label] = 0.8
            writer.write(with_copies(encode_reference(source.name, index, probs, 2), 2))
    samples = report.kept_samples(str(filtered), [0, 1], 4, source_pattern=str(source))
    assert samples == {0: [images[1], images[4]], 1: [images[2], images[5]]}
    assert report.kept_samples(str(filtered), [0, 1], 4) == {0: [], 1: []}
