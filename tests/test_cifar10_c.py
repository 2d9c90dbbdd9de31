"""benchmarks/cifar10_c.py: a corrupted set built from a few images, two models of one run
directory (RUN@0, RUN@1), and the report's arithmetic (the first model's mCE is 100)."""

import io
import json
import os

import numpy as np
import pytest
from benchmark_modules import load_benchmark
from PIL import Image

pytest.importorskip("imagecorruptions")

TEACHER_CENTERS = [65.0, 195.0]  # brightness of class 1 and 2 for each fake model
STUDENT_CENTERS = [100.0, 220.0]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("cifar10_c")


def test_report_arithmetic_hand_computed(bench):
    teacher = {"name": "teacher", "clean_error": 0.1,
               "errors": {"fog": [0.2, 0.3, 0.4, 0.5, 0.6], "snow": [0.2] * 5}}
    student = {"name": "student", "clean_error": 0.05,
               "errors": {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "snow": [0.3] * 5}}
    report = bench.compare([teacher, student])
    first, second = report["models"]
    assert report["baseline"] == "teacher" and report["corruptions"] == ["fog", "snow"]
    assert first["CE"] == pytest.approx({"fog": 1.0, "snow": 1.0})
    assert first["mCE"] == pytest.approx(1.0) and first["relative_mCE"] == pytest.approx(1.0)
    # CE = sum of the student's errors / sum of the teacher's: fog 1.5 / 2.0, snow 1.5 / 1.0.
    assert second["CE"] == pytest.approx({"fog": 0.75, "snow": 1.5})
    assert second["mCE"] == pytest.approx(1.125)
    # relative: (1.5 - 5 x 0.05) / (2.0 - 5 x 0.1) and (1.5 - 0.25) / (1.0 - 0.5).
    assert second["relative_CE"] == pytest.approx({"fog": 1.25 / 1.5, "snow": 2.5})
    assert second["relative_mCE"] == pytest.approx((1.25 / 1.5 + 2.5) / 2)
    assert second["mean_error"] == pytest.approx(0.3)
    assert second["mean_error_per_severity"] == pytest.approx([0.2, 0.25, 0.3, 0.35, 0.4])
    text = bench.markdown(report, "header")
    assert "| teacher | 10.00 | 30.00 | **100.0** | 100.0 |" in text
    assert "| student | 5.00 | 30.00 | **112.5** | 166.7 |" in text
    assert "| fog | 40.00 | 100.0 | 30.00 | 75.0 |" in text
    assert "| 5 | 40.00 | 40.00 |" in text
    assert "lower CE on 1 of 2 corruptions" in text
    with pytest.raises(ValueError, match="--names"):
        bench.compare([teacher, teacher])
    with pytest.raises(ValueError, match="baseline's error is 0"):
        bench.compare([{**teacher, "errors": {"fog": [0.0] * 5}}, student])
    # A baseline whose corrupted error equals its clean error leaves relative CE undefined.
    flat = bench.compare([{**teacher, "errors": {"snow": [0.1] * 5}},
                          {**student, "errors": {"snow": [0.3] * 5}}])
    assert flat["models"][1]["mCE"] == pytest.approx(3.0)
    assert flat["models"][1]["relative_mCE"] is None
    assert "| student | 5.00 | 30.00 | **300.0** | undefined |" in bench.markdown(flat, "")


def test_comparison_chart_has_a_bar_group_per_model():
    from noisy_student.evaluation import robustness

    ce = {"teacher": {"fog": 1.0, "snow": 1.0}, "student": {"fog": 0.75, "snow": 1.5}}
    fig = robustness.corruption_comparison_figure(ce, {"teacher": 1.0, "student": 1.125})
    ax = fig.axes[0]
    assert [len(bars) for bars in ax.containers] == [2, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fog", "snow"]
    assert [b.get_height() for b in ax.containers[1]] == pytest.approx([75.0, 150.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "teacher mCE 100.0", "student mCE 112.5", "teacher", "student"]


def _brightness_model(keras, centers):
    """A Keras model whose top class is the one with the nearest mean brightness m:
    argmin_k (m - c_k)^2 = argmax_k 2 c_k m - c_k^2, linear in the channel means."""
    inputs = keras.Input((32, 32, 3))
    dense = keras.layers.Dense(len(centers))
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    c = np.asarray(centers, np.float32)
    dense.set_weights([np.tile(2 * c / 3, (3, 1)), -c ** 2])
    return model


def _write_input(tf, folder):
    from noisy_student.data import records

    levels = [40, 60, 70, 110, 150, 190, 200, 230]
    labels = [1, 1, 1, 1, 2, 2, 1, 2]  # 1-based; 200 is labeled dark: every model errs on it
    path = folder / "validation-00000-of-00001"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for level, label in zip(levels, labels, strict=True):
            buffer = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), level, np.uint8)).save(buffer, format="PNG")
            writer.write(records.encode_labeled(buffer.getvalue(), label))
    (folder / "labels.txt").write_text("1 dark\n2 bright\n")
    return str(folder / "validation-*")


def test_end_to_end_on_a_run_directory(tf, keras, bench, tmp_path, capsys):
    from test_corruptions import _nearest_center_error

    from noisy_student.training import save_model

    run = tmp_path / "run"
    (run / "manifest.json").parent.mkdir()
    (run / "manifest.json").write_text(json.dumps({"stages": {}}))
    for folder, centers in (("teacher", TEACHER_CENTERS),
                            (os.path.join("iter1", "student"), STUDENT_CENTERS)):
        save_model(_brightness_model(keras, centers), str(run / folder / "model.keras"))
    (tmp_path / "in").mkdir()
    pattern = _write_input(tf, tmp_path / "in")
    data, out = tmp_path / "data", tmp_path / "out"
    names = ("brightness", "fog")
    argv = [f"--models={run}@0,{run}@1", "--names=teacher,student", f"--input={pattern}",
            f"--data_dir={data}", f"--out_dir={out}", f"--corruptions={','.join(names)}",
            "--workers=1", "--batch_size=4"]
    assert bench.main(argv) == 0

    def reference(centers):
        clean = _nearest_center_error(str(data / "clean" / "validation-00000-of-00001"),
                                      centers, 1)
        errors = {c: [_nearest_center_error(str(data / "corrupted" / c / str(s) /
                                                "validation-00000-of-00001"), centers, 1)
                      for s in range(1, 6)] for c in names}
        return clean, errors

    (t_clean, t_errors), (s_clean, s_errors) = reference(TEACHER_CENTERS), reference(
        STUDENT_CENTERS)
    # the data make the cases non-trivial: errors change with severity and differ by model
    assert t_errors != s_errors and any(len(set(e)) > 1 for e in t_errors.values())
    report = json.loads((out / "cifar10_c.json").read_text())
    teacher, student = report["models"]
    assert report["num_images"] == 8 and report["baseline"] == "teacher"
    assert teacher["clean_error"] == pytest.approx(t_clean)
    assert student["clean_error"] == pytest.approx(s_clean)
    for c in names:
        assert teacher["errors"][c] == pytest.approx(t_errors[c]), c
        assert student["errors"][c] == pytest.approx(s_errors[c]), c
    assert teacher["mCE"] == pytest.approx(1.0)
    assert teacher["CE"] == pytest.approx({c: 1.0 for c in names})
    expected = {c: sum(s_errors[c]) / sum(t_errors[c]) for c in names}
    assert student["CE"] == pytest.approx(expected)
    assert student["mCE"] == pytest.approx(np.mean(list(expected.values())))
    relative = [(sum(s_errors[c]) - 5 * s_clean) / (sum(t_errors[c]) - 5 * t_clean)
                for c in names]
    assert student["relative_mCE"] == pytest.approx(np.mean(relative))
    text = (out / "cifar10_c.md").read_text()
    assert "| teacher |" in text and "**100.0**" in text
    assert f"**{100 * student['mCE']:.1f}**" in text
    assert (out / "cifar10_c_ce.png").stat().st_size > 0
    assert (data / "corrupted" / "labels.txt").read_text() == "1 dark\n2 bright\n"

    # A rerun builds nothing and evaluates nothing; another input is refused.
    files = sorted(p for p in data.rglob("validation-*"))
    stamps = [p.stat().st_mtime_ns for p in files]
    capsys.readouterr()
    assert bench.main(argv) == 0
    assert "reused" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in sorted(data.rglob("validation-*"))] == stamps
    assert len(files) == 1 + 2 * 5
    with pytest.raises(SystemExit, match="build.json"):
        bench.main([*argv, "--max_images=4"])
