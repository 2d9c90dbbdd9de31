"""The evaluation entry point on a fake run directory: model choice, EMA default, outputs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from noisy_student.cli import evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_IMAGES = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory, tf):
    """One TFRecord file of the first 24 bundled validation images (1-based labels) and a
    labels.txt beside it, so the expected order and names are known."""
    import shutil

    from data_helpers import SAMPLE_DIR, encode, sample_pixels

    from noisy_student.data import records

    folder = tmp_path_factory.mktemp("data")
    images, labels = sample_pixels(NUM_IMAGES)
    with tf.io.TFRecordWriter(str(folder / "validation-00000-of-00001")) as writer:
        for pixels, label in zip(images, labels, strict=True):
            writer.write(records.encode_labeled(encode(pixels), int(label) + 1))
    shutil.copy(os.path.join(SAMPLE_DIR, "labels.txt"), folder / "labels.txt")
    return str(folder / "validation-*")


def _tiny(keras, seed):
    from efficientnet_tf import create_model

    keras.utils.set_random_seed(seed)
    return create_model("b0", classes=10, small_images=True, width_coefficient=0.25,
                        depth_coefficient=0.25, input_shape=(32, 32, 3),
                        classifier_activation=None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, keras):
    """A run directory as the loop leaves it: manifest, teacher and iter1 student model.keras
    (saved from EMA weights), different weights each."""
    from noisy_student.training import save_model

    root = tmp_path_factory.mktemp("run")
    (root / "manifest.json").write_text(json.dumps({"stages": {}}))
    models = {}
    for iteration, folder in ((0, "teacher"), (1, os.path.join("iter1", "student"))):
        models[iteration] = _tiny(keras, seed=iteration + 1)
        save_model(models[iteration], str(root / folder / "model.keras"))
    return str(root), models


def _reference(model, count):
    """`model.predict` on Pillow-decoded sample images, and their 0-based labels."""
    from data_helpers import sample_pixels

    images, labels = sample_pixels(count)
    scores = model.predict(images.astype("float32"), verbose=0, batch_size=8)
    return scores, labels


def test_clean_eval_of_a_run_directory(tf, run_dir, data):
    root, models = run_dir
    options = evaluate.EvalOptions(model=root, data=data, num_classes=10, small_images=True,
                                       batch_size=8)
    result = evaluate.run(options)
    assert result["model"]["iteration"] == 1 and result["model"]["weights"] == "ema"
    scores, labels = _reference(models[1], NUM_IMAGES)
    assert result["num_examples"] == NUM_IMAGES
    assert result["top1"] == pytest.approx(np.mean(scores.argmax(1) == labels))
    # Class names come from the labels.txt next to the records.
    assert "airplane" in result["per_class_accuracy"]
    saved = os.path.join(root, "eval", "iter1", "clean.json")
    assert json.load(open(saved))["top1"] == pytest.approx(result["top1"])
    assert os.path.exists(os.path.join(root, "eval", "iter1", "clean_confusion.png"))

    teacher = evaluate.run(evaluate.EvalOptions(
        model=root, iteration=0, data=data, num_classes=10, small_images=True, batch_size=8,
        max_steps=2, output_dir=os.path.join(root, "elsewhere")))
    scores, labels = _reference(models[0], 16)
    assert teacher["num_examples"] == 16
    assert teacher["top1"] == pytest.approx(np.mean(scores.argmax(1) == labels))
    assert os.path.exists(os.path.join(root, "elsewhere", "clean.json"))

    # Both are recorded in the run's manifest, where the report finds them.
    recorded = json.load(open(os.path.join(root, "manifest.json")))["evaluations"]
    student, first = recorded["iter1/eval"]["clean"], recorded["teacher/eval"]["clean"]
    assert student["top1"] == pytest.approx(result["top1"]) and student["weights"] == "ema"
    assert student["json"] == os.path.join("eval", "iter1", "clean.json")
    assert student["figures"] == [os.path.join("eval", "iter1", "clean_confusion.png")]
    assert first["num_examples"] == 16 and first["json"] == os.path.join("elsewhere", "clean.json")
    report = open(evaluate.run(evaluate.EvalOptions(model=root, benchmark="report"))["report"])
    assert "| student 1 | clean | top1 |" in report.read()


def test_options_for_a_run_model_follow_the_run():
    """--mode=eval with a robustness benchmark builds the model of an iteration as the run
    does: its architecture, the students' own coefficients, the run's data settings."""
    from noisy_student.config import RunConfig

    config = RunConfig(run_dir="r", teacher_model="b0", student_models=["b1"], num_classes=10,
                       small_images=True, width_coefficient=0.25,
                       student_width_coefficient=0.5, eval_batch_size=16)
    student = evaluate.EvalOptions.for_run(config, 1, benchmark="corrupted", data="d")
    assert (student.model, student.arch, student.width_coefficient, student.depth_coefficient,
            student.num_classes, student.small_images, student.batch_size, student.benchmark) == (
        "r", "b1", 0.5, None, 10, True, 16, "corrupted")
    assert evaluate.EvalOptions.for_run(config, 0).width_coefficient == 0.25


def test_bad_requests_name_the_problem(tf, run_dir, data, tmp_path):
    root, _ = run_dir
    with pytest.raises(FileNotFoundError, match="iteration 7"):
        evaluate.run(evaluate.EvalOptions(model=root, iteration=7, data=data))
    # Raw (non-EMA) weights need a checkpoint, which this run directory does not have.
    with pytest.raises(FileNotFoundError, match="no model.keras and no checkpoint"):
        evaluate.run(evaluate.EvalOptions(model=root, ema=False, data=data))
    with pytest.raises(ValueError, match="needs --data"):
        evaluate.run(evaluate.EvalOptions(model=root))
    corrupted = str(tmp_path / "corrupted")
    for name in ("fog", "snow"):
        os.makedirs(os.path.join(corrupted, name, "1"), exist_ok=True)
    with pytest.raises(FileNotFoundError, match=r"no folder for --corruptions \['frost'\]; "
                       "it has fog, snow"):
        evaluate.run(evaluate.EvalOptions(model=root, benchmark="corrupted", data=corrupted,
                                          corruptions=["fog", "frost"]))


def test_unknown_corruption_names_stop_before_the_model_loads(tmp_path):
    """--corruptions (imagenet_c) and --perturbations (imagenet_p) outside the published sets:
    one line naming the bad names and the choices, exit status 2, no model needed."""
    from noisy_student.cli.flag_groups import names_flag

    assert names_flag("--corruptions", None, ("fog",)) is None
    assert names_flag("--corruptions", ["fog"], ("fog", "snow")) == ["fog"]
    missing = str(tmp_path / "no_model")
    for benchmark, flag, names, choices in (
            ("imagenet_c", "--corruptions", "fog,fogg", "gaussian_noise,shot_noise,"),
            ("imagenet_p", "--perturbations", "blur", "gaussian_noise,shot_noise,motion_blur")):
        run = subprocess.run(
            [sys.executable, "-m", "noisy_student.cli.evaluate", f"--model={missing}",
             f"--benchmark={benchmark}", f"--data={tmp_path}", f"{flag}={names}"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr[-3000:]
        [line] = [line for line in run.stderr.splitlines() if "error" in line.lower()]
        unknown = names.split(",")[-1]
        assert line.startswith(f"noisy-student-eval: error: {flag}: unknown {unknown}; "
                               f"choose from {choices}"), line


def test_help_lists_the_flags():
    run = subprocess.run([sys.executable, "-m", "noisy_student.cli.evaluate", "--help"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    for flag in ("--benchmark", "--baseline_errors", "--noema", "--max_videos"):
        assert flag.lstrip("-").replace("no", "", 1) in run.stdout, (flag, run.stderr)


def test_expected_error_is_one_line_and_status_2_unless_traceback(tmp_path):
    command = [sys.executable, "-m", "noisy_student.cli.evaluate", f"--model={tmp_path}"]
    plain = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2, plain.stderr[-3000:]
    assert [line for line in plain.stderr.splitlines() if "error" in line.lower()] == [
        "noisy-student-eval: error: --benchmark=clean needs --data (--traceback shows the stack)"]
    assert "Traceback" not in plain.stderr

    shown = subprocess.run([*command, "--traceback"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 1, shown.stderr[-3000:]
    assert "Traceback (most recent call last)" in shown.stderr
    assert shown.stderr.rstrip().endswith("ValueError: --benchmark=clean needs --data")
    assert "noisy-student-eval: error" not in shown.stderr


@pytest.mark.parametrize("module, args", [
    ("noisy_student.cli.export_model", ["--model={missing}"]),
    ("noisy_student.cli.cam", ["--models={missing}", "--images={missing}"]),
])
def test_export_and_cam_report_a_missing_model_in_one_line(tmp_path, module, args):
    """The export and Grad-CAM tools follow the same rule as noisy-student-eval: a missing model
    is one line naming it and exit status 2, not a traceback."""
    missing = str(tmp_path / "no_such_model.keras")
    program = {"export_model": "noisy-student-export-model", "cam": "noisy-student-cam"}[
        module.rsplit(".", 1)[1]]
    run = subprocess.run([sys.executable, "-m", module, *(a.format(missing=missing) for a in args)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert [line for line in run.stderr.splitlines() if "error" in line.lower()] == [
        f"{program}: error: {missing}: no such model file or directory "
        "(--traceback shows the stack)"]
