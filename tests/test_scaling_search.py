"""noisy-student-scaling-search: the candidate grid and the ranking against hand-computed cases,
the step-2 call against the builder, and one search end to end on the bundled sample (a rerun
retrains nothing)."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from noisy_student.analysis import scaling_grid, scaling_search
from noisy_student.analysis.scaling_grid import Candidate
from noisy_student.assets import SAMPLE_DIR as SAMPLE
from noisy_student.cli import scaling_search as ss

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _triples(candidates):
    return [tuple(c) for c in candidates]


# ---- the grid ----


def test_grid_with_step_0_1_by_hand():
    # Grid 1.0, 1.1, ...; |alpha * beta^2 * gamma^2 - 2| <= 0.05. Products, worked by hand:
    expected = [
        (1.0, 1.0, 1.4),  # 1.96 (1.4^2)
        (1.0, 1.1, 1.3),  # 1.21 * 1.69 = 2.0449
        (1.0, 1.3, 1.1),  # 2.0449
        (1.0, 1.4, 1.0),  # 1.96
        (1.2, 1.0, 1.3),  # 1.2 * 1.69 = 2.028
        (1.2, 1.3, 1.0),  # 2.028
        (1.4, 1.0, 1.2),  # 1.4 * 1.44 = 2.016
        (1.4, 1.1, 1.1),  # 1.4 * 1.4641 = 2.04974
        (1.4, 1.2, 1.0),  # 2.016
        (2.0, 1.0, 1.0),  # 2
    ]
    found = scaling_grid.grid_candidates(target=2.0, tolerance=0.05, step=0.1)
    assert _triples(found) == expected
    # Near misses: 1.6 * 1.21 = 1.936, 1.7 * 1.21 = 2.057, 1.1 * 1.21 * 1.44 = 1.9166.
    for miss in [(1.6, 1.1, 1.0), (1.7, 1.0, 1.1), (1.1, 1.1, 1.2)]:
        assert miss not in _triples(found)


def test_grid_with_step_0_05_and_tolerance_0_05():
    found = scaling_grid.grid_candidates(target=2.0, tolerance=0.05, step=0.05)
    triples = _triples(found)
    assert len(found) == 55
    assert all(min(c) >= 1 and abs(c.multiplier - 2) <= 0.05 + 1e-9 for c in found)
    assert (1.95, 1.0, 1.0) in triples and (2.05, 1.0, 1.0) in triples  # bounds are inclusive
    assert (2.1, 1.0, 1.0) not in triples
    assert (1.25, 1.1, 1.15) in triples  # 1.25 * 1.21 * 1.3225 = 2.00028
    assert (1.15, 1.15, 1.15) in triples  # 1.15^5 = 2.01136
    # The paper's B0 result (1.2, 1.1, 1.15) gives 1.2 * 1.21 * 1.3225 = 1.92027: outside 0.05.
    assert (1.2, 1.1, 1.15) not in triples
    assert (1.2, 1.1, 1.15) in _triples(scaling_grid.grid_candidates(2.0, 0.08, 0.05))
    # beta and gamma enter squared alike: the grid is symmetric in them.
    assert sorted(triples) == sorted((a, g, b) for a, b, g in triples)
    assert triples == sorted(triples)


def test_grid_errors():
    with pytest.raises(ValueError, match="step must be > 0"):
        scaling_grid.grid_candidates(step=0)
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        scaling_grid.grid_candidates(tolerance=-0.1)
    with pytest.raises(ValueError, match="below 1"):
        scaling_grid.grid_candidates(target=0.5, tolerance=0.1)
    # 1.3 * ... misses 2
    assert scaling_grid.grid_candidates(target=2.0, tolerance=0.0, step=0.3) == []
    with pytest.raises(ValueError, match="raise --tolerance"):
        scaling_search.candidate_list(
            scaling_search.SearchOptions("out", tolerance=0.0, grid_step=0.3))


def test_parse_candidates():
    assert scaling_grid.parse_candidates(["1.2:1.1:1.15", "2:1:1", "1.2:1.1:1.15"]) == [
        Candidate(1.2, 1.1, 1.15), Candidate(2.0, 1.0, 1.0)]
    assert Candidate(1.2, 1.1, 1.15).name == "a1.2_b1.1_g1.15"
    with pytest.raises(ValueError, match="alpha:beta:gamma"):
        scaling_grid.parse_candidates(["1.2,1.1"])
    with pytest.raises(ValueError, match=">= 1"):
        scaling_grid.parse_candidates(["0.9:1:1"])


# ---- ranking ----


def test_ranking_by_accuracy_and_by_the_nas_objective():
    target = 2_000_000
    rows = [
        {"name": "a", "top1": 0.800, "macs": 2_200_000},  # 10% over the target
        {"name": "b", "top1": 0.795, "macs": 1_800_000},  # 10% under
        {"name": "c", "top1": None, "macs": 1_000_000},  # not scored (diverged or pending)
    ]
    by_accuracy = scaling_grid.rank_results(rows, rank_by="accuracy", target_flops=target)
    assert [(r["name"], r["rank"]) for r in by_accuracy] == [("a", 1), ("b", 2), ("c", None)]
    # ACC * (FLOPS/T)^-0.07: 1.1^-0.07 = exp(-0.07 ln 1.1) = 0.9933505, 0.8 * that = 0.7946804;
    # 0.9^-0.07 = exp(0.07 * 0.1053605) = 1.0074025, 0.795 * that = 0.8008850: the cheaper
    # candidate wins.
    by_nas = scaling_grid.rank_results(rows, rank_by="nas", target_flops=target)
    assert [(r["name"], r["rank"]) for r in by_nas] == [("b", 1), ("a", 2), ("c", None)]
    assert by_nas[0]["score"] == pytest.approx(0.8008850, abs=1e-7)
    assert by_nas[1]["score"] == pytest.approx(0.7946804, abs=1e-7)
    assert by_accuracy[0]["nas_objective"] == pytest.approx(0.7946804, abs=1e-7)
    assert by_nas[2]["score"] is None and "nas_objective" not in by_nas[2]
    # At the target FLOPs the objective is the accuracy; ties go to fewer MACs.
    assert scaling_grid.nas_objective(0.7, target, target) == pytest.approx(0.7)
    tied = scaling_grid.rank_results([{"name": "x", "top1": 0.5, "macs": 3},
                            {"name": "y", "top1": 0.5, "macs": 2}])
    assert [r["name"] for r in tied] == ["y", "x"]
    with pytest.raises(ValueError, match="needs target_flops"):
        scaling_grid.rank_results(rows, rank_by="nas")
    assert rows[0].keys() == {"name", "top1", "macs"}  # the inputs are not changed


# ---- the base network and step 2 ----


def test_base_network_scaling_and_the_create_model_call(keras):
    from efficientnet_tf import architecture_of, create_model
    from efficientnet_tf.complexity import count_macs

    base = scaling_grid.BaseNetwork.of("b0", width=0.5, depth=0.5, small_images=True, classes=10)
    assert (base.model, base.resolution) == ("efficientnet-b0", 32)
    winner = Candidate(1.2, 1.1, 1.15)
    width, depth, resolution = base.scaled(winner)
    assert (width, depth, resolution) == (pytest.approx(0.55), pytest.approx(0.6), 37)
    assert base.macs(width, depth, resolution) == count_macs(0.55, 0.6, 37, classes=10,
                                                             small_images=True)
    assert base.scaled(winner, phi=2) == (pytest.approx(0.605), pytest.approx(0.72), 42)
    call = base.create_model_call(winner, phi=2)
    assert call == ("create_model(phi=2, alpha=1.2, beta=1.1, gamma=1.15, base_resolution=32, "
                    "base_width=0.5, base_depth=0.5, small_images=True, "
                    "input_shape=(42, 42, 3), classes=10)")
    model = eval(call, {"create_model": create_model})  # the printed call builds the network
    record = architecture_of(model)
    assert (record.width_coefficient, record.depth_coefficient) == (
        pytest.approx(0.605), pytest.approx(0.72))
    assert model.input_shape == (None, 42, 42, 3) and record.small_images
    assert base.trainer_flags(winner) == ("--teacher_model=b0 --width_coefficient=0.55 "
                                          "--depth_coefficient=0.6 --image_size=37 "
                                          "--small_images")
    text = scaling_search.step2_text(base, winner, [1, 2])
    assert "create_model(phi=1, " in text and "create_model(phi=2, " in text


def test_recipe_flags_cover_the_teacher_stage_settings():
    """--help lists every noisy-student flag a candidate's training depends on."""
    from noisy_student.cli import flags as recipe_flags  # noqa: F401 - defines the flags
    from noisy_student.run.directory import TEACHER_SETTINGS

    assert set(TEACHER_SETTINGS) - {"teacher_checkpoint"} <= set(ss.RECIPE_FLAGS)
    assert all(name in ss.FLAGS for name in ss.RECIPE_FLAGS)


def test_help_explains_the_flags():
    run = subprocess.run([sys.executable, "-m", "tools.scaling_search", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    for flag in ("output_dir", "target_multiplier", "tolerance", "grid_step", "candidates",
                 "rank_by", "nas_weight", "phis", "dry_run", "base_model", "train_epochs",
                 "label_data", "eval_data", "small_images"):
        # absl lists "  --name: help", booleans as "  --[no]name: help".
        assert re.search(rf"^  --(\[no\])?{flag}: \S", run.stdout, re.M), (flag, run.stderr)
    assert "(default: '5.0')" in run.stdout.split("  --train_epochs:", 1)[1][:200]


# ---- end to end ----

TINY = [f"--label_data={os.path.join(SAMPLE, 'train-00000-of-00004')}",  # 250 images
        f"--eval_data={os.path.join(SAMPLE, 'validation-00000-of-00002')}",  # 1000 images
        "--num_classes=10", "--small_images", "--teacher_model=b0", "--width_coefficient=0.25",
        "--depth_coefficient=0.25", "--train_batch_size=32", "--eval_batch_size=100",
        "--train_epochs=0.5", "--checkpoint_every=2", "--quiet"]


def _search(output_dir, *extra):
    command = [sys.executable, "-m", "tools.scaling_search", f"--output_dir={output_dir}",
               "--candidates=1:1:1.15,2:1:1", "--phis=1,2", *TINY, *extra]
    # Seconds on an idle machine; minutes when other jobs share the 2 cores.
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _mtimes(output_dir):
    files = glob.glob(os.path.join(output_dir, "candidates", "*", "manifest.json"))
    files += glob.glob(os.path.join(output_dir, "candidates", "*", "teacher", "*"))
    return {path: os.stat(path).st_mtime_ns for path in files}


def test_search_end_to_end_and_a_rerun_retrains_nothing(tmp_path):
    from PIL import Image

    out = str(tmp_path / "search")
    first = _search(out)
    assert "[1/2] a1_b1_g1.15" in first.stderr and "[2/2] a2_b1_g1" in first.stderr
    assert first.stderr.count("; training") == 2
    with open(os.path.join(out, scaling_search.RESULTS_JSON)) as f:
        results = json.load(f)
    rows = results["candidates"]
    assert {r["name"] for r in rows} == {"a1_b1_g1.15", "a2_b1_g1"}
    assert sorted(r["rank"] for r in rows) == [1, 2]
    for row in rows:
        assert row["status"] == "done" and row["num_examples"] == 1000 and 0 <= row["top1"] <= 1
        assert row["steps"] == int(0.5 * 250 / 32)
        assert row["run_dir"] == os.path.join("candidates", row["name"])
    by_name = {r["name"]: r for r in rows}
    assert by_name["a1_b1_g1.15"]["resolution"] == 37  # 32 * 1.15 = 36.8
    assert by_name["a2_b1_g1"]["depth"] == 0.5 and by_name["a2_b1_g1"]["width"] == 0.25
    assert results["best"]["name"] == rows[0]["name"]
    assert [s["phi"] for s in results["scale_up"]] == [1, 2]
    assert results["base"]["macs"] > 0 and results["target_macs"] == 2 * results["base"]["macs"]
    with Image.open(os.path.join(out, scaling_search.RESULTS_PNG)) as image:
        assert image.format == "PNG"
    with open(os.path.join(out, scaling_search.RESULTS_TABLE)) as f:
        table = f.read()
    assert "a*b^2*g^2" in table and "Step 2" in table and "create_model(phi=2," in table
    assert "Step 2" in first.stdout and "top-1" in first.stdout
    leftovers = [n for n in os.listdir(out) if n.startswith(".") and n != ".lock"]
    assert leftovers == []  # every file was renamed into place
    before = _mtimes(out)
    assert any(path.endswith("model.keras") for path in before)

    # A rerun (ranking by the NAS objective this time) trains and evaluates nothing again.
    second = _search(out, "--rank_by=nas")
    assert len(re.findall(r"finished earlier \(top-1 [\d.]+%\); not retrained",
                          second.stderr)) == 2
    assert "; training" not in second.stderr
    assert _mtimes(out) == before
    with open(os.path.join(out, scaling_search.RESULTS_JSON)) as f:
        reranked = json.load(f)
    assert reranked["rank_by"] == "nas"
    assert all(r["score"] == pytest.approx(r["nas_objective"]) for r in reranked["candidates"])
    assert {r["name"]: r["top1"] for r in reranked["candidates"]} == {
        r["name"]: r["top1"] for r in rows}


def test_a_diverged_candidate_is_recorded_and_skipped(tmp_path, monkeypatch, tf):
    from noisy_student.pipeline.loop import RunConfig
    from noisy_student.training import NonFiniteLossError

    recipe = RunConfig(run_dir="unused", label_data=os.path.join(SAMPLE, "train-00000-of-00004"),
                       eval_data=os.path.join(SAMPLE, "validation-00000-of-00002"),
                       num_classes=10, small_images=True, width_coefficient=0.25,
                       depth_coefficient=0.25, train_batch_size=32, train_epochs=0.5, quiet=True)
    options = scaling_search.SearchOptions(str(tmp_path), candidates=[Candidate(1.0, 1.2, 1.0)])

    def diverge(*args, **kwargs):
        raise NonFiniteLossError(3, "loss nan at step 3")

    monkeypatch.setattr("noisy_student.pipeline.stages.train", diverge)
    messages = []
    results = scaling_search.search(recipe, options, progress=messages.append)
    (row,) = results["candidates"]
    assert (row["status"], row["rank"], row["top1"], results["best"]) == (
        "diverged", None, None, None)
    assert os.path.isfile(tmp_path / "candidates" / "a1_b1.2_g1" / scaling_search.DIVERGED)
    assert os.path.isfile(tmp_path / scaling_search.RESULTS_PNG)  # an empty plot says so

    def fail(*args, **kwargs):
        raise AssertionError("a diverged candidate was retrained")

    monkeypatch.setattr("noisy_student.pipeline.stages.train", fail)
    messages.clear()
    again = scaling_search.search(recipe, options, progress=messages.append)
    assert again["candidates"][0]["status"] == "diverged"
    assert any("diverged earlier" in m for m in messages)
