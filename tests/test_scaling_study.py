"""benchmarks/scaling_study.py: the knob of each scaling method solved for matched MACs
(checked against count_macs called directly), the plan, the reports with training faked, the
dry run from the command line, and the partial CIFAR-10 data build it relies on."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from benchmark_modules import load_benchmark

from efficientnet_tf.complexity import count_macs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "scaling_study.py")


study = load_benchmark("scaling_study")
BASE = study.BaseNetwork.of("b0", width=0.5, depth=0.5, small_images=True, classes=10)


def _macs(width=0.5, depth=0.5, resolution=32):
    return count_macs(width, depth, resolution, classes=10, small_images=True)


# Each method's knob -> (width, depth, resolution), written out here independently of the
# script, and the settings a brute-force search tries.
NETWORKS = {
    "width": (lambda m: (0.5 * m, 0.5, 32), [1 + k / 100 for k in range(1, 300)]),
    "depth": (lambda m: (0.5, 0.5 * m, 32), [1 + k / 100 for k in range(1, 600)]),
    "resolution": (lambda r: (0.5, 0.5, r), list(range(33, 120))),
    "compound": (lambda phi: (0.5 * 1.1**phi, 0.5 * 1.2**phi, int(round(32 * 1.15**phi))),
                 [k / 100 for k in range(1, 400)]),
}


@pytest.mark.parametrize("target", [2.0, 4.0])
@pytest.mark.parametrize("method", study.METHODS)
def test_the_knob_gives_the_nearest_macs_to_the_target(method, target):
    model = study.solve(BASE, method, target)
    row = study.describe(BASE, model)
    network, settings = NETWORKS[method]
    width, depth, resolution = network(model.parameter)
    assert (row["width"], row["depth"], row["resolution"]) == (
        pytest.approx(width), pytest.approx(depth), resolution)
    assert row["macs"] == _macs(width, depth, resolution)  # the actual, rounded network
    assert row["macs_ratio"] == pytest.approx(row["macs"] / _macs())

    def error(setting):
        return abs(math.log(_macs(*network(setting)) / _macs() / target))

    # No setting of the knob comes closer (brute force over a wide range).
    assert min(error(s) for s in settings) == pytest.approx(error(model.parameter))
    assert row["on_target"] == (abs(row["macs_ratio"] / target - 1) <= 0.05)
    if method != "depth":  # width, resolution and phi are fine enough to hit it within 5%
        assert row["on_target"], row
    assert model.name == f"{method}_{target:g}x"


def test_each_method_changes_only_its_dimensions():
    rows = {m.name: study.describe(BASE, m) for m in study.plan_study(BASE, targets=[2.0])}
    assert list(rows) == ["base", "width_2x", "depth_2x", "resolution_2x", "compound_2x"]
    grown = {name: (row["width"] > 0.5, row["depth"] > 0.5, row["resolution"] > 32)
             for name, row in rows.items()}
    assert grown == {"base": (False, False, False), "width_2x": (True, False, False),
                     "depth_2x": (False, True, False), "resolution_2x": (False, False, True),
                     "compound_2x": (True, True, True)}
    assert {name: row["macs_ratio"] for name, row in rows.items()}["base"] == 1.0
    # Step 2 of the paper's rule: the compound model is base x (1.2, 1.1, 1.15)^phi.
    phi = study.solve(BASE, "compound", 2.0).parameter
    assert rows["compound_2x"]["depth"] == pytest.approx(0.5 * 1.2**phi)
    assert rows["compound_2x"]["width"] == pytest.approx(0.5 * 1.1**phi)


def test_plan_order_and_bad_input():
    plan = study.plan_study(BASE, ["depth", "width"], [4.0, 2.0])
    assert [m.name for m in plan] == ["base", "depth_2x", "width_2x", "depth_4x", "width_4x"]
    assert [m.knob for m in plan][:1] == ["-"]
    assert study.StudyModel("resolution", 2.0, 41).knob == "41 px"
    assert study.StudyModel("compound", 2.0, 0.73).knob == "phi 0.73"
    with pytest.raises(ValueError, match="unknown scaling methods"):
        study.plan_study(BASE, ["height"])
    with pytest.raises(ValueError, match="must be > 1"):
        study.solve(BASE, "width", 1.0)


def test_images_per_second_of_a_resumed_stage_count_only_its_last_sitting():
    # The stage's time covers the sitting that resumed at step 6: 4 steps x 64 images in 4 s.
    row = {"steps": 10, "train_seconds": 4.0, "resumed_from_step": 6}
    assert study.images_per_second(row, 64) == pytest.approx(64.0)
    assert study.images_per_second({**row, "resumed_from_step": 0}, 64) == pytest.approx(160.0)
    assert study.images_per_second({"steps": 10, "train_seconds": None}, 64) is None


def test_study_with_training_faked(tmp_path, monkeypatch, tf):
    """run_study trains every planned model in OUT/models/<name> with the scaled settings and
    writes the JSON, markdown and PNG; a diverged model is reported, not fatal."""
    from PIL import Image

    from noisy_student.config import RunConfig

    recipe = RunConfig(run_dir="unused", label_data="train-*", eval_data="validation-*",
                       num_classes=10, small_images=True, width_coefficient=0.5,
                       depth_coefficient=0.5, train_batch_size=64, train_epochs=3.0)
    plan = study.plan_study(BASE, ["width", "depth"], [2.0])
    calls = []

    def fake_train(config, strategy, worker_index, row, prefix, progress):
        calls.append((row["name"], config.run_dir, config.width_coefficient,
                      config.depth_coefficient, config.image_size, config.train_epochs))
        progress(prefix)
        if row["name"] == "depth_2x":
            return {"status": "diverged", "error": "loss nan at step 3"}
        return {"status": "done", "top1": 0.5 + row["macs_ratio"] / 100, "steps": 10,
                "train_seconds": 4.0, "eval_seconds": 61.0}

    monkeypatch.setattr(study.scaling_search, "train_candidate", fake_train)
    out = str(tmp_path / "study")
    messages = []
    document = study.run_study(recipe, BASE, plan, out, methods=["width", "depth"],
                               targets=[2.0], progress=messages.append)
    rows = {row["name"]: row for row in document["models"]}
    for name, run_dir, width, depth, size, epochs in calls:
        assert run_dir == os.path.join(out, "models", name)
        assert (width, depth, size) == (pytest.approx(rows[name]["width"]),
                                        pytest.approx(rows[name]["depth"]),
                                        rows[name]["resolution"])
        assert epochs == 3.0  # the same budget for every model
    assert [c[0] for c in calls] == ["base", "width_2x", "depth_2x"]
    assert messages == ["[1/3] base", f"[2/3] width_2x ({plan[1].knob})",
                        f"[3/3] depth_2x ({plan[2].knob})"]
    assert rows["width_2x"]["top1"] == pytest.approx(0.5 + rows["width_2x"]["macs_ratio"] / 100)
    assert rows["depth_2x"]["status"] == "diverged" and rows["depth_2x"].get("top1") is None
    assert rows["base"]["run_dir"] == os.path.join("models", "base")

    with open(os.path.join(out, study.RESULTS_JSON)) as f:
        assert json.load(f) == json.loads(json.dumps(document))
    assert document["budget"]["train_epochs"] == 3.0 and document["targets"] == [2.0]
    with open(os.path.join(out, study.RESULTS_TABLE)) as f:
        table = f.read()
    width_line = next(line for line in table.splitlines() if line.startswith("| width_2x |"))
    cells = [cell.strip() for cell in width_line.strip("|").split("|")]
    assert cells[1] == plan[1].knob and cells[4] == "32"
    assert cells[6] == f"{rows['width_2x']['macs_ratio']:.2f}"
    assert cells[7] == f"{100 * rows['width_2x']['top1']:.2f}%"
    assert cells[8:] == ["1m05s", "160"]  # 4 + 61 s; 10 steps x 64 images / 4 s
    depth_line = next(line for line in table.splitlines() if line.startswith("| depth_2x |"))
    assert "diverged" in depth_line and "*" in depth_line  # off its MACs target: starred
    assert "more than 5% from its MACs target" in table and "3 epochs" in table
    with Image.open(os.path.join(out, study.RESULTS_PNG)) as image:
        assert image.format == "PNG"
    assert [n for n in os.listdir(out) if n.startswith(".") and n != ".lock"] == []


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    out = tmp_path / "study"
    run = subprocess.run([sys.executable, SCRIPT, "--dry_run", "--methods=width,resolution",
                          "--targets=4,2", f"--out_dir={out}", "--train_epochs=3"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    names = [line.split()[0] for line in run.stdout.splitlines()[2:7]]
    assert names == ["base", "width_2x", "resolution_2x", "width_4x", "resolution_4x"]
    assert "5 models, 3 epochs each" in run.stdout  # --train_epochs goes to the recipe
    assert not out.exists()
    bad = subprocess.run([sys.executable, SCRIPT, "--dry_run", "--methods=height"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--methods: unknown ['height']" in bad.stderr


def test_partial_data_build(tmp_path, capsys):
    """build_data(splits=...) writes only those splits; a later full build adds the rest and
    the recorded build time adds up."""
    bench = load_benchmark("self_training_cifar10")
    rng = np.random.default_rng(0)
    cifar = tmp_path / "npz"
    cifar.mkdir()
    names = np.array([f"class{i}" for i in range(10)])
    for i in range(5):  # 81 images per class: 80 labeled, 1 unlabeled
        labels = rng.permutation(np.repeat(np.arange(10), 81))
        np.savez(cifar / f"cifar10_train_{i}.npz", labels=labels, class_names=names,
                 images=rng.integers(0, 256, (len(labels), 4, 4, 3), dtype=np.uint8))
    np.savez(cifar / "cifar10_test.npz", labels=np.arange(10), class_names=names,
             images=rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8))
    data = tmp_path / "data"
    first = bench.build_data(str(data), str(cifar), ("train", "validation"))
    written = sorted(os.listdir(data))
    assert sum(n.startswith("train-") for n in written) == 4
    assert sum(n.startswith("validation-") for n in written) == 4
    assert not any(n.startswith("unlabeled-") for n in written)
    assert bench.build_data(str(data), str(cifar), ("train", "validation")) == pytest.approx(
        first, abs=0.1)
    assert "train, validation complete" in capsys.readouterr().out
    total = bench.build_data(str(data), str(cifar))
    assert sum(n.startswith("unlabeled-") for n in os.listdir(data)) == 16
    assert total >= first
    with pytest.raises(ValueError, match=r"unknown split\(s\) \[.test.\]"):
        bench.build_data(str(data), str(cifar), ("test",))
