"""benchmarks/cifar10_ablations.py: the paired arms x seeds grid, its jobs, resumption and
results (with a fake loop that records stages as the real one does), and the paired
statistics it reports."""

import json
import math
import os
import sys

import pytest
from absl import flags
from absl.testing import flagsaver
from benchmark_modules import load_benchmark

from noisy_student import assets
from noisy_student.cli import flags as cli_flags

SAMPLE = assets.SAMPLE_DIR


@pytest.fixture(scope="module")
def ablations():
    return load_benchmark("cifar10_ablations")


@pytest.fixture(scope="module")
def stats():
    return load_benchmark("paired_stats")


def test_paired_interval_uses_students_t(stats):
    # differences 1, 2, 3: mean 2, sd 1; t(0.975, 2) = 4.303 (any t table).
    result = stats.paired_difference({1: 0.71, 2: 0.72, 3: 0.73, 4: 0.9}, {1: 0.70, 2: 0.70,
                                                                            3: 0.70})
    assert result["seeds"] == [1, 2, 3] and result["n"] == 3
    assert result["mean"] == pytest.approx(0.02) and result["sd"] == pytest.approx(0.01)
    half = 4.303 * 0.01 / math.sqrt(3)
    assert (result["low"], result["high"]) == pytest.approx((0.02 - half, 0.02 + half))
    assert result["excludes_zero"] is False  # 2 - 2.48 < 0 < 2 + 2.48 points
    # With mean 2 and sd 1 points, n=4 gives 3.182 / 2 = 1.59 < 2 (n=3: 2.48 > 2).
    assert result["seeds_to_exclude_zero"] == 4
    assert stats.seeds_needed(-0.255, 0.0636) == 3 and stats.seeds_needed(0.01, 1.0) is None
    steady = stats.paired_difference({1: 0.72, 2: 0.72, 3: 0.73}, {1: 0.70, 2: 0.70, 3: 0.70})
    assert steady["excludes_zero"] is True and steady["low"] > 0
    assert stats.paired_difference({1: 0.7}, {1: 0.6})["low"] is None
    assert stats.t_quantile(11) == stats.T_975[10]  # conservative between table entries


def test_jobs_come_by_priority_with_what_they_need(ablations):
    jobs = ablations.plan_jobs([1, 2], ["recipe", "supervised", "iterations_3"], {})
    names = [job.name for job in jobs]
    assert names[:5] == ["seed1_teacher", "seed1_labels", "seed1_recipe", "seed2_teacher",
                         "seed2_labels"]
    assert names.index("seed1_supervised") > names.index("seed2_recipe")
    assert names.index("seed1_iterations_3") > names.index("seed1_recipe")
    committed = {"recipe": [{"seed": 1, "student_top1": 0.7}]}
    later = [job.name for job in ablations.plan_jobs([1], ["recipe", "no_noise"], committed)]
    assert later == ["seed1_teacher", "seed1_labels", "seed1_no_noise"]
    extra = ablations.plan_jobs([1], ["recipe"], committed, extra_teachers=[4, 5])
    assert [job.name for job in extra] == ["seed4_teacher", "seed5_teacher"]


def test_each_arms_commands_pass_the_clis_checks(ablations, tmp_path):
    """Every arm's loop invocations, with the shipped flagfile, get past flag validation, and
    start where the arm's shared stages end."""
    args, _ = ablations.parse_args([f"--out_dir={tmp_path}"])
    args.passthrough = []
    flagfile = assets.config_path("cifar10_4000")
    data = [f"--label_data={SAMPLE}/train-*", f"--unlabel_data={SAMPLE}/unlabeled-*",
            f"--eval_data={SAMPLE}/validation-*"]
    modes = {}
    for arm in ablations.ARMS:
        job = ablations.Job("arm", 1, arm)
        commands = ablations.loop_commands(job, args)
        modes[arm] = [" ".join(command[:2]) for command in commands]
        for command in commands:
            with flagsaver.flagsaver():  # each command is a fresh process
                flags.FLAGS(["test", f"--flagfile={flagfile}", *data,
                             *ablations.job_flags(job, args, []), *command])
                cli_flags.validate()
    assert modes["recipe"] == ["--mode=student --iteration=1", "--mode=eval --iteration=1"]
    assert modes["no_filter_no_balance"][0] == "--mode=filter --iteration=1"
    assert modes["iterations_3"][0] == "--mode=label --iteration=2"
    assert modes["iterations_3"][-1] == "--mode=eval --iteration=3"
    supervised = ablations.loop_commands(ablations.Job("arm", 1, "supervised"), args)
    assert supervised[0] == ["--mode=teacher", "--train_epochs=224"]  # 176 + 48


def test_arm_flags_win_over_the_grids_passthrough_flags(ablations, tmp_path):
    """A grid over RandAugment teachers: passthrough RandAugment 2/5 reaches the teacher and the
    recipe's student, but no_noise's student still trains without it, and aliases follow."""
    grid = ["--teacher_randaug", "--randaug_num_layers=2", "--randaug_magnitude=5"]
    args, _ = ablations.parse_args([f"--out_dir={tmp_path}", *grid])
    args.passthrough = grid
    flagfile = assets.config_path("cifar10_4000")
    parsed = {}
    for arm in ("recipe", "no_noise", "model_noise_only"):
        with flagsaver.flagsaver():
            flags.FLAGS(["test", f"--flagfile={flagfile}",
                         *ablations.job_flags(ablations.Job("arm", 1, arm), args, grid)])
            parsed[arm] = (flags.FLAGS.teacher_randaug, flags.FLAGS.randaug_num_layers,
                           flags.FLAGS.dropout_rate)
    assert parsed["recipe"][:2] == (True, 2)
    assert parsed["no_noise"] == (True, 0, 0.0)
    assert parsed["model_noise_only"][:2] == (True, 0)
    # The flagfile alone has no RandAugment, so model_noise_only trains the recipe's student;
    # over the grid's RandAugment it does not, and recipe_randaugment does instead.
    assert ablations.find_aliases(flagfile)["model_noise_only"] == "recipe"
    over_grid = ablations.find_aliases(flagfile, grid)
    assert "model_noise_only" not in over_grid and over_grid["recipe_randaugment"] == "recipe"


class FakeLoop:
    """Stands in for `python -m noisy_student.cli.main`: records the stage a command runs in its
    run dir's manifest (and writes its folder), with made-up accuracies."""

    def __init__(self):
        self.commands = []

    def __call__(self, flagfile, args):
        self.commands.append(args)
        values = dict(arg[2:].split("=", 1) for arg in args if "=" in arg)
        run_dir, mode = values["run_dir"], values["mode"]
        iteration = int(values.get("iteration", 0))
        path = os.path.join(run_dir, "manifest.json")
        manifest = (json.load(open(path)) if os.path.exists(path)
                    else {"settings": {}, "stages": {}})
        prefix = "teacher" if iteration == 0 else f"iter{iteration}"
        stage = {"teacher": "teacher", "student": f"iter{iteration}/student",
                 "eval": f"{prefix}/eval", "label": f"iter{iteration}/label",
                 "filter": f"iter{iteration}/filter"}[mode]
        seed = int(values["seed"])
        noise = 0.0 if "--dropout_rate=0" in args else 0.02
        result = {"steps": 5, "train_seconds": 9.0} if mode in ("teacher", "student") else {}
        if mode == "eval":
            result = {"top1": 0.6 + 0.01 * seed + (0.05 + noise) * iteration}
        manifest["stages"][stage] = result
        os.makedirs(run_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(manifest, f)
        folder = {"teacher": "teacher", "student": f"iter{iteration}/student",
                  "label": f"iter{iteration}/labels", "filter": f"iter{iteration}/filtered"}
        if mode in folder:
            os.makedirs(os.path.join(run_dir, folder[mode]), exist_ok=True)
            open(os.path.join(run_dir, folder[mode], "part"), "w").close()
        if mode in ("teacher", "student"):
            with open(os.path.join(run_dir, folder[mode], "model.keras"), "w") as f:
                f.write(f"model of {run_dir} {mode} {iteration}")
        return 0


def test_grid_runs_resumes_and_writes_paired_results(ablations, tmp_path, monkeypatch):
    fake = FakeLoop()
    monkeypatch.setattr(ablations, "run_loop", fake)
    monkeypatch.setattr(ablations, "build_data", lambda *a: 0.0)
    results = tmp_path / "results" / "ablations.json"
    argv = [f"--out_dir={tmp_path / 'out'}", f"--results={results}", "--seeds=1,2,3",
            "--arms=recipe,no_noise,iterations_3"]
    assert ablations.main(argv) == 0
    teachers = [c for c in fake.commands if "--mode=teacher" in c]
    assert len(teachers) == 3  # one teacher per seed, shared by every arm
    recipe = tmp_path / "out" / "seed2" / "recipe"
    assert os.path.samefile(tmp_path / "out" / "seed2" / "teacher" / "teacher" / "part",
                            recipe / "teacher" / "part")
    assert os.path.samefile(tmp_path / "out" / "seed2" / "labels" / "iter1" / "filtered" /
                            "part", recipe / "iter1" / "filtered" / "part")
    saved = json.loads(results.read_text())
    assert list(saved) == ["recipe", "no_noise", "iterations_3"]
    for records in saved.values():
        assert [r["seed"] for r in records] == [1, 2, 3]
        for record in records:
            assert set(ablations.RECORD_FIELDS) <= set(record)
            assert record["commit"] and record["command"]
            assert str(tmp_path) not in json.dumps(record)  # committed: no machine paths
            assert "--run_dir=<out_dir>/seed" in record["command"][0]
    assert saved["recipe"][0]["student_top1"] == pytest.approx(0.68)
    assert saved["iterations_3"][0]["student_top1"] == pytest.approx(0.61 + 0.21)
    assert saved["iterations_3"][0]["per_iteration_top1"] == pytest.approx(
        [0.61, 0.68, 0.75, 0.82])
    table = (tmp_path / "results" / "ablations.md").read_text()
    assert "| no_noise |" in table and "-2.00 [-2.00, -2.00], n=3 | recipe better" in table
    # Each student minus its own seed's teacher (0.61, 0.62, 0.63): +7 points on every seed.
    assert "| 69.00 +- 1.00 | +7.00 [+7.00, +7.00], n=3 | - |" in table
    assert "Every job adds" not in table  # the grid passed no flags of its own
    assert (tmp_path / "results" / "ablations.png").stat().st_size > 1000
    teachers_json = json.loads((tmp_path / "results" / "ablations_teachers.json").read_text())
    assert teachers_json["n"] == 3 and teachers_json["sd_top1"] == pytest.approx(0.01)

    count = len(fake.commands)
    assert ablations.main(argv) == 0  # finished jobs are skipped
    assert len(fake.commands) == count
    fresh = [f"--out_dir={tmp_path / 'fresh'}", f"--results={results}", "--seeds=1,2,3,4",
             "--arms=recipe,no_noise"]
    assert ablations.main(fresh) == 0  # a new machine: only seed 4 runs, the rest committed
    assert {c[1] for c in fake.commands[count:]} == {"--seed=4"}
    assert [r["seed"] for r in json.loads(results.read_text())["recipe"]] == [1, 2, 3, 4]

    # Another machine adds an arm: the kept teachers are reused, not retrained, and the alias
    # (model_noise_only trains what the recipe trains while the flagfile has no RandAugment)
    # copies the recipe's records.
    count = len(fake.commands)
    again = [f"--out_dir={tmp_path / 'again'}", f"--results={results}", "--seeds=1,2",
             "--arms=recipe,model_noise_only,hard_labels"]
    assert ablations.main(again) == 0
    assert not [c for c in fake.commands[count:] if "--mode=teacher" in c or "recipe" in c[0]]
    teacher = tmp_path / "again" / "seed2" / "teacher" / "teacher" / "model.keras"
    assert teacher.read_text() == f"model of {tmp_path / 'out' / 'seed2' / 'teacher'} teacher 0"
    saved = json.loads(results.read_text())
    assert [r["student_top1"] for r in saved["model_noise_only"]] == [
        r["student_top1"] for r in saved["recipe"][:2]]
    assert saved["model_noise_only"][0]["same_as"] == "recipe"
    assert [r["seed"] for r in saved["hard_labels"]] == [1, 2]


def test_backfill_scores_what_is_left_and_names_what_is_not(ablations, tmp_path, monkeypatch,
                                                             capsys):
    """--backfill_mce scores finished jobs lacking mCE: models still in out_dir, and kept
    teachers on a fresh machine; a student whose model is gone is named, not invented."""
    monkeypatch.setattr(ablations, "run_loop", FakeLoop())
    monkeypatch.setattr(ablations, "build_data", lambda *a: 0.0)
    scored = []

    def fake_mce(job, args):
        model = os.path.join(job.run_dir(args.out_dir),
                             ablations.layout.model_dir(ablations.last_iteration(job)),
                             "model.keras")
        scored.append((job.name, open(model).read()))
        return 0.3 + 0.01 * job.seed + (0.1 if job.kind == "teacher" else 0.0)

    monkeypatch.setattr(ablations, "job_mce", fake_mce)
    results = tmp_path / "results" / "ablations.json"
    out = tmp_path / "out"
    argv = [f"--out_dir={out}", f"--results={results}", "--seeds=1,2", "--arms=recipe"]
    assert ablations.main(argv) == 0 and not scored  # no mCE unless asked
    os.remove(out / "seed2" / "recipe" / "iter1" / "student" / "model.keras")
    with pytest.raises(SystemExit):
        ablations.parse_args(["--backfill_mce"])  # needs a number of images
    assert ablations.main([*argv, "--backfill_mce", "--mce_images=10"]) == 0
    assert sorted(name for name, _ in scored) == ["seed1_recipe", "seed1_teacher",
                                                  "seed2_teacher"]
    assert "seed2_recipe" in capsys.readouterr().out
    saved = json.loads(results.read_text())
    assert [r["mce"] for r in saved["recipe"]] == [pytest.approx(0.31), None]
    teachers = json.loads((tmp_path / "results" / "ablations_teachers.json").read_text())
    assert teachers["mean_mce"] == pytest.approx(0.415) and teachers["n_mce"] == 2
    assert "mean corruption error 41.50 +- 0.71% over 2" in (
        tmp_path / "results" / "ablations.md").read_text()

    # A fresh machine: the kept teachers are adopted and scored; the students are gone.
    scored.clear()
    teachers_file = tmp_path / "results" / "ablations_teachers.json"
    kept = json.loads(teachers_file.read_text())
    for record in kept["seeds"]:
        record["mce"] = None
    teachers_file.write_text(json.dumps(kept))
    fresh = [f"--out_dir={tmp_path / 'fresh'}", f"--results={results}", "--seeds=1,2",
             "--arms=recipe", "--backfill_mce", "--mce_images=10"]
    assert ablations.main(fresh) == 0
    assert sorted(scored) == [("seed1_teacher", f"model of {out / 'seed1' / 'teacher'} teacher 0"),
                              ("seed2_teacher", f"model of {out / 'seed2' / 'teacher'} teacher 0")]
    assert "seed2_recipe" in capsys.readouterr().out


def test_a_dead_workers_lock_is_taken_over(ablations, tmp_path):
    lock = str(tmp_path / "locks" / "job")
    assert ablations.claim(lock) and not ablations.claim(lock)  # held by this process
    owner = os.path.join(lock, "owner.json")
    data = json.load(open(owner))
    data["pid"] = 2**22 + 12345  # no such process
    json.dump(data, open(owner, "w"))
    assert ablations.claim(lock)


def test_unknown_arm_is_refused(ablations, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["x"])
    with pytest.raises(SystemExit):
        ablations.parse_args(["--arms=recipe,noise_free"])
    assert "noise_free" in capsys.readouterr().err


def test_a_teachers_only_table_lists_the_teachers_and_no_empty_arm_table():
    report = load_benchmark("ablation_report")
    teachers = {1: {"seed": 1, "teacher_top1": 0.7413}}
    text = report.table({}, teachers, ["recipe"], {})
    assert "Teachers: 74.13% top-1 over 1 seed (74.13)." in text
    assert "| arm |" not in text
    with_arm = report.table({"recipe": {1: {"seed": 1, "student_top1": 0.75}}}, teachers,
                            ["recipe"], {})
    assert "| arm |" in with_arm and "| recipe |" in with_arm


def test_a_grid_over_other_teachers_is_compared_with_its_baseline(ablations, tmp_path,
                                                                   monkeypatch):
    """--baseline: this grid's teachers and arms minus another committed grid's, paired by
    seed, and the flags this grid adds to every job are named."""
    monkeypatch.setattr(ablations, "run_loop", FakeLoop())
    monkeypatch.setattr(ablations, "build_data", lambda *a: 0.0)
    baseline = tmp_path / "base.json"
    baseline.write_text(json.dumps({"recipe": [
        {"seed": s, "teacher_top1": 0.5, "student_top1": v}
        for s, v in ((1, 0.60), (2, 0.64), (3, 0.60), (4, 0.99))]}))
    (tmp_path / "base_teachers.json").write_text(json.dumps({"seeds": [
        {"seed": s, "teacher_top1": 0.5} for s in (1, 2, 3)]}))
    results = tmp_path / "grid.json"
    assert ablations.main([f"--out_dir={tmp_path / 'out'}", f"--results={results}",
                           "--seeds=1,2,3", "--arms=recipe", f"--baseline={baseline}",
                           "--teacher_randaug", "--randaug_num_layers=2"]) == 0
    table = (tmp_path / "grid.md").read_text()
    assert "Every job adds to the flagfile: `--teacher_randaug --randaug_num_layers=2`." in table
    # Teachers 0.61-0.63 against 0.5: +11, +12, +13, sd 1, t(2) 4.303 -> +-2.48; students
    # 0.68-0.70 against 0.60, 0.64, 0.60 on seeds 1-3 (seed 4 is the baseline's alone): +8, +5,
    # +10, mean 7.67, sd 2.52.
    assert ("| teachers | 1,2,3 | 62.00 +- 1.00 | 50.00 +- 0.00 | +12.00 [+9.52, +14.48], n=3 |"
            in table)
    half = 4.303 * 2.5166 / math.sqrt(3)
    assert (f"| recipe | 1,2,3 | 69.00 +- 1.00 | 61.33 +- 2.31 | +7.67 [{7.667 - half:+.2f}, "
            f"{7.667 + half:+.2f}], n=3 |") in table
