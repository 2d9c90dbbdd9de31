"""Noisy Student's ablations in miniature: CIFAR-10 with 4,000 labels, arms x seeds, paired.

Per seed one teacher (the flagfile's, ``--seed=N``) is shared by every arm; each arm trains
student 1 from it with the flagfile plus the arm's flags, at the recipe's full student length,
so that an arm's difference to ``recipe`` on the same seed is a paired comparison.

    out_dir/seed<N>/teacher/     the teacher (run dir: teacher + teacher/eval)
    out_dir/seed<N>/labels/      the recipe's pseudo labels and filtered set (iter1/label, filter)
    out_dir/seed<N>/<arm>/       the arm's run dir: the stages it shares are hard links
    out_dir/records/<job>.json   one finished job (the durable result; see RECORD_FIELDS)
    out_dir/locks/<job>          the worker running it

Jobs run in priority order (ARMS' order over seeds); several workers (this script started
more than once on the same --out_dir, e.g. one TensorFlow thread each) share the queue through
lock folders. Everything resumes: a rerun skips finished jobs and the loop resumes a killed
stage from its checkpoint. Jobs already in the committed results file (--results) are skipped
too, so a later session continues the grid on a fresh machine; a retrained teacher whose
top-1 differs from the one committed for its seed is reported (the pairing then mixes
teachers).

    python benchmarks/cifar10_ablations.py --seeds=1,2,3 --tf_threads=1 &   # worker 1
    python benchmarks/cifar10_ablations.py --seeds=1,2,3 --tf_threads=1 &   # worker 2
    python benchmarks/cifar10_ablations.py --summarize      # results JSON, table and plot
    python benchmarks/cifar10_ablations.py --backfill_mce --mce_images=2000  # mCE of finished
                                                            # jobs whose records lack it
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ablation_report import merged_records, teachers_path, write_results  # noqa: E402
from provenance import commit  # noqa: E402
from self_training_cifar10 import (  # noqa: E402
    CIFAR_DIR,
    DATA_DIR,
    ROOT,
    build_data,
    check_passthrough,
    flag_value,
    run_loop,
)

sys.path.insert(0, ROOT)
from noisy_student.atomic_io import read_json, write_json_atomic  # noqa: E402
from noisy_student.run import layout  # noqa: E402

FLAGFILE = os.path.join(ROOT, "noisy_student", "assets", "configs", "cifar10_4000.cfg")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "cifar10_4000_ablations.json")
NO_MODEL_NOISE = ["--dropout_rate=0", "--stochastic_depth_rate=0"]
RANDAUGMENT = ["--randaug_num_layers=2", "--randaug_magnitude=5"]
# The larger student: about 2x the teacher's multiply-adds (efficientnet_tf.complexity: 2.01x
# at 32 px); width 0.6 would give block2a a residual connection the teacher lacks.
LARGER = ["--student_width_coefficient=0.55", "--student_depth_coefficient=1.0"]
# Students from scratch train at the teacher's peak rate (the flagfile's 4x rate is for
# students that start from their teacher's weights).
SCRATCH = ["--student_init=scratch", "--student_base_learning_rate=0.016"]


@dataclasses.dataclass(frozen=True)
class Arm:
    """One ablation: the loop's flags on top of the flagfile, and what it shares with the
    seed's recipe run. `shares`: "filter" (labels and filtered set), "label" (labels only;
    the arm filters), "recipe" (the recipe's student 1; the arm adds iterations), or ""
    (nothing: a supervised run of its own)."""

    flags: tuple[str, ...] = ()
    shares: str = "filter"
    iterations: int = 1
    claim: str = ""


ARMS: dict[str, Arm] = {
    "recipe": Arm(claim="reference: the shipped flagfile's student 1"),
    "no_noise": Arm((*NO_MODEL_NOISE, "--randaug_num_layers=0"),
                    claim="removing the student's noise hurts"),
    "supervised": Arm(("--teacher_randaug",), shares="",
                      claim="self-training beats supervised training of equal steps"),
    "larger_student_grow": Arm(("--student_init=grow", *LARGER),
                               claim="a larger student helps"),
    "input_noise_only": Arm((*NO_MODEL_NOISE, *RANDAUGMENT),
                            claim="input noise (RandAugment) alone"),
    "model_noise_only": Arm(("--randaug_num_layers=0",),
                            claim="model noise (dropout, stochastic depth) alone"),
    "recipe_randaugment": Arm(RANDAUGMENT, claim="all three noises, as in the paper"),
    "hard_labels": Arm(("--teacher_softmax_temp=-1",), claim="soft pseudo labels beat hard"),
    "no_filter_no_balance": Arm(("--min_threshold=0", "--nobalance_classes"), shares="label",
                                claim="filtering and balancing help small models"),
    "equal_student_scratch": Arm(SCRATCH, claim="a student from scratch vs from its teacher"),
    "larger_student_scratch": Arm((*SCRATCH, *LARGER), claim="a larger student from scratch"),
    "unlabel_ratio_3": Arm(("--unlabel_ratio=3",),
                           claim="a larger unlabeled:labeled batch ratio helps"),
    "iterations_3": Arm(shares="recipe", iterations=3, claim="iterating helps"),
    # Where noise starts to matter (issue #29 item 4): the noise ablation at longer students.
    **{f"{name}_{k}x_steps": Arm((*flags, f"--student_epochs={48 * k}"),
                                 claim=f"{claim} at {k}x the student's steps")
       for k in (2, 4) for name, flags, claim in (
           ("recipe", (), "reference"),
           ("no_noise", (*NO_MODEL_NOISE, "--randaug_num_layers=0"), "removing noise hurts"),
           ("recipe_randaugment", RANDAUGMENT, "all three noises"))},
}
# The grid's arms by default; the longer-student curve runs when asked (--arms=...).
DEFAULT_ARMS = [name for name in ARMS if "_steps" not in name]
# Arms whose flags give the recipe's settings with this flagfile (e.g. model_noise_only while the
# recipe has no RandAugment) copy the recipe's records instead of training again (see main).
ALIASES: dict[str, str] = {}
# Stage -> the folder it writes, relative to a run directory.
STAGE_DIRS = {"teacher": layout.model_dir(0),
              **{f"iter{i}/{kind}": folder(i) for i in (1, 2, 3) for kind, folder in
                 (("label", layout.labels_dir), ("filter", layout.filtered_dir),
                  ("student", layout.model_dir))}}
# What one finished arm x seed records (top-1 as fractions; the arm's last student).
RECORD_FIELDS = ("seed", "teacher_top1", "student_top1", "mce", "steps")


# ----------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated seeds.")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help=f"Comma-separated arms (default: all but the *_steps ones) of "
                        f"{', '.join(ARMS)}.")
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "runs", "cifar10_ablations"))
    parser.add_argument("--flagfile", default=FLAGFILE)
    parser.add_argument("--extra_teacher_seeds", default="",
                        help="Seeds whose teachers alone are trained, last (the teachers' "
                        "spread over seeds).")
    parser.add_argument("--results", default=RESULTS,
                        help="The committed results file: its jobs count as done; "
                        "--summarize merges this run's records into it.")
    parser.add_argument("--baseline", default=None,
                        help="Another committed results file: the table then compares this "
                        "grid's teachers and arms with that grid's, paired by seed (e.g. "
                        "students over teachers of another recipe).")
    parser.add_argument("--summarize", action="store_true",
                        help="Only write the results JSON, table and plot.")
    parser.add_argument("--mce_images", type=int, default=0,
                        help="Score each teacher and student on CIFAR-10-C built from this "
                        "many test images (0: no mCE).")
    parser.add_argument("--backfill_mce", action="store_true",
                        help="Only score finished jobs whose records have no mCE yet (models "
                        "still in --out_dir, or kept teachers) with --mce_images, then "
                        "summarize.")
    parser.add_argument("--tf_threads", type=int, default=None,
                        help="TensorFlow intra- and inter-op threads per process (unset: "
                        "TensorFlow's default).")
    parser.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                        help="Pass --deterministic to the loop (op determinism).")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--cifar_dir", default=CIFAR_DIR)
    args, passthrough = parser.parse_known_args(argv)
    check_passthrough(parser, passthrough)
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.extra_teacher_seeds = [int(s) for s in args.extra_teacher_seeds.split(",") if s]
    args.arms = [a for a in args.arms.split(",") if a]
    if args.backfill_mce and args.mce_images < 1:
        parser.error("--backfill_mce needs --mce_images >= 1 (e.g. 2000)")
    unknown = set(args.arms) - set(ARMS)
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; choose from {list(ARMS)}")
    return args, passthrough


# ----------------------------------------------------------------------------- run dirs
def manifest(run_dir: str) -> dict:
    return read_json(os.path.join(run_dir, layout.MANIFEST)) or {"settings": {},
                                                                     "stages": {}}


def seed_run_dir(target: str, sources: dict[str, str]) -> None:
    """Starts run dir `target` with the finished stages of other run dirs ({stage: source}):
    their folders hard-linked, the manifest listing them as finished (without their settings,
    so the arm's own flags may differ). A no-op once `target` has a manifest."""
    if os.path.exists(os.path.join(target, layout.MANIFEST)):
        return
    os.makedirs(target, exist_ok=True)
    stages = {}
    for stage, source in sources.items():
        stages[stage] = manifest(source)["stages"][stage]
        folder = STAGE_DIRS.get(stage)
        if folder and not os.path.exists(os.path.join(target, folder)):
            shutil.copytree(os.path.join(source, folder), os.path.join(target, folder),
                            copy_function=os.link)
        labels = os.path.join(source, "labels.txt")
        if os.path.exists(labels) and not os.path.exists(os.path.join(target, "labels.txt")):
            shutil.copy(labels, target)
    write_json_atomic(os.path.join(target, layout.MANIFEST),
                      {"settings": {}, "stages": stages})


def teacher_stages(teacher_dir: str) -> dict[str, str]:
    return {"teacher": teacher_dir, "teacher/eval": teacher_dir}


# ----------------------------------------------------------------------------- jobs
@dataclasses.dataclass
class Job:
    """One unit of work: a seed's teacher or labels, or an arm on a seed."""

    kind: str  # teacher, labels or arm
    seed: int
    arm: str = ""

    @property
    def name(self) -> str:
        return f"seed{self.seed}_{self.arm or self.kind}"

    def run_dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, f"seed{self.seed}", self.arm or self.kind)

    def needs(self) -> list[Job]:
        if self.kind == "teacher":
            return []
        if self.kind == "labels":
            return [Job("teacher", self.seed)]
        if self.arm in ALIASES:
            return [Job("arm", self.seed, ALIASES[self.arm])]
        shares = ARMS[self.arm].shares
        return {"": [Job("teacher", self.seed)],
                "label": [Job("labels", self.seed)], "filter": [Job("labels", self.seed)],
                "recipe": [Job("arm", self.seed, "recipe")]}[shares]


def plan_jobs(seeds: list[int], arms: list[str], committed: dict,
              extra_teachers: list[int] = ()) -> list[Job]:
    """Every job still to do, highest priority first: each arm over all seeds before the next
    arm, with the teachers and labels that those need; then the extra seeds' teachers."""
    def is_committed(job: Job) -> bool:
        return any(r["seed"] == job.seed for r in committed.get(job.arm, []))

    wanted = [job for arm in arms for seed in seeds
              if not is_committed(job := Job("arm", seed, arm))]
    jobs: list[Job] = []

    def add(job: Job) -> None:
        for need in job.needs():
            if not (need.kind == "arm" and is_committed(need)):
                add(need)
        if job.name not in {j.name for j in jobs}:
            jobs.append(job)

    for job in [*wanted, *(Job("teacher", seed) for seed in extra_teachers)]:
        add(job)
    return jobs


def flagfile_settings(flagfile: str, extra: tuple[str, ...] | list[str]) -> dict[str, str]:
    """--name=value settings of a flagfile with `extra` flags on top (later ones win)."""
    with open(flagfile) as f:
        lines = [line.strip() for line in f if line.strip().startswith("--")]
    settings = {}
    for arg in [*lines, *extra]:
        name, _, value = arg[2:].partition("=")
        if name.startswith("no") and not value:
            name, value = name[2:], "false"
        settings[name] = value or "true"
    return settings


def find_aliases(flagfile: str, passthrough: Sequence[str] = ()) -> dict[str, str]:
    """Arms that train exactly what `recipe` trains with this flagfile and passthrough flags."""
    def settings(arm: Arm) -> dict[str, str]:
        return flagfile_settings(flagfile, [*passthrough, *arm.flags])

    recipe = settings(ARMS["recipe"])
    return {name: "recipe" for name, arm in ARMS.items() if name != "recipe" and
            arm.shares == "filter" and arm.iterations == 1 and settings(arm) == recipe}


def loop_commands(job: Job, args: argparse.Namespace) -> list[list[str]]:
    """The loop invocations of a job (--mode and --iteration per stage)."""
    if job.kind == "teacher":
        return [["--mode=teacher"], ["--mode=eval", "--iteration=0"]]
    if job.kind == "labels":
        return [["--mode=label", "--iteration=1"], ["--mode=filter", "--iteration=1"]]
    arm = ARMS[job.arm]
    if not arm.shares:  # supervised: the teacher's recipe for teacher + student epochs
        epochs = (float(flag_value("train_epochs", args.flagfile, args.passthrough)) +
                  float(flag_value("student_epochs", args.flagfile, args.passthrough)))
        return [["--mode=teacher", f"--train_epochs={epochs:g}"],
                ["--mode=eval", "--iteration=0", f"--train_epochs={epochs:g}"]]
    first = {"filter": 1, "label": 1, "recipe": 2}[arm.shares]
    commands = []
    for iteration in range(first, arm.iterations + 1):
        modes = ["label", "filter", "student", "eval"]
        if iteration == 1:
            modes = modes[{"filter": 2, "label": 1}[arm.shares]:]
        commands += [[f"--mode={mode}", f"--iteration={iteration}"] for mode in modes]
    return commands


def prepare_job(job: Job, out_dir: str) -> None:
    """Hard-links what the job shares into its run dir."""
    teacher = Job("teacher", job.seed).run_dir(out_dir)
    if job.kind == "labels":
        seed_run_dir(job.run_dir(out_dir), teacher_stages(teacher))
    elif job.kind == "arm" and ARMS[job.arm].shares:
        shares = ARMS[job.arm].shares
        if shares == "recipe":
            recipe = Job("arm", job.seed, "recipe").run_dir(out_dir)
            stages = [name for name in manifest(recipe)["stages"]
                      if name.startswith(("teacher", "iter1/"))]
            sources = {stage: recipe for stage in stages}
        else:
            labels = Job("labels", job.seed).run_dir(out_dir)
            sources = {**teacher_stages(teacher), "iter1/label": labels}
            if shares == "filter":
                sources["iter1/filter"] = labels
        seed_run_dir(job.run_dir(out_dir), sources)


def job_flags(job: Job, args: argparse.Namespace, passthrough: list[str]) -> list[str]:
    """The loop's flags for `job`: run dir and seed, then the passthrough flags (settings of
    the whole grid, e.g. a RandAugment teacher), then the arm's own flags, which win: over
    passthrough ``--randaug_num_layers=2``, ``no_noise`` still trains its student without
    RandAugment (the teacher, trained before, keeps it)."""
    flags = [f"--run_dir={job.run_dir(args.out_dir)}", f"--seed={job.seed}",
             f"--checkpoint_every={flag_value('checkpoint_every', args.flagfile, []) or 200}"]
    if args.deterministic:
        flags.append("--deterministic")
    if job.kind != "arm":
        return [*flags, *passthrough]
    return [*flags, *passthrough,
            f"--student_models={','.join(['b0'] * ARMS[job.arm].iterations)}",
            *ARMS[job.arm].flags]


def record_of(job: Job, args: argparse.Namespace, commands: list[list[str]],
              seconds: float) -> dict:
    """What a finished job leaves: the figures, and how, where and when they were made."""
    stages = manifest(job.run_dir(args.out_dir))["stages"]
    last = last_iteration(job)
    teacher = manifest(Job("teacher", job.seed).run_dir(args.out_dir))["stages"]
    model = stages.get(layout.stage_name(layout.TRAIN, last), {})
    record = {
        "seed": job.seed,
        "teacher_top1": teacher.get("teacher/eval", {}).get("top1"),
        "student_top1": stages.get(layout.stage_name(layout.EVAL, last), {}).get("top1"),
        "mce": None,
        "steps": model.get("steps"),
        "train_seconds": model.get("train_seconds"),
        "per_iteration_top1": [stages.get(layout.stage_name(layout.EVAL, i), {})
                               .get("top1") for i in range(0, last + 1)],
        "commit": commit(),
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "host": socket.gethostname(),
        "tf_threads": args.tf_threads,
        "job_seconds": round(seconds),
        "command": [f"noisy-student --flagfile={os.path.relpath(args.flagfile, ROOT)} "
                    + " ".join(job_flags(job, args, args.passthrough) + c) for c in commands],
    }
    if job.kind != "arm":
        record["student_top1"] = None
    return record


# ----------------------------------------------------------------------------- workers
def claim(lock: str) -> bool:
    """Takes the job's lock folder; a lock whose process is gone is taken over."""
    try:
        os.makedirs(lock)
    except FileExistsError:
        owner = read_json(os.path.join(lock, "owner.json")) or {}
        if owner.get("host") == socket.gethostname() and not _alive(owner.get("pid", -1)):
            shutil.rmtree(lock, ignore_errors=True)
            return claim(lock)
        return False
    write_json_atomic(os.path.join(lock, "owner.json"),
                      {"pid": os.getpid(), "host": socket.gethostname()})
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def record_path(out_dir: str, job: Job) -> str:
    return os.path.join(out_dir, "records", f"{job.name}.json")


def copy_alias(job: Job, args: argparse.Namespace) -> None:
    """An alias arm's record: its recipe twin's, marked as the same run."""
    twin = read_json(record_path(args.out_dir, Job("arm", job.seed, ALIASES[job.arm]))) or next(
        r for r in (read_json(args.results) or {}).get(ALIASES[job.arm], [])
        if r["seed"] == job.seed)
    write_record(job, args, {**twin, "same_as": ALIASES[job.arm]})


def adopt_teacher(job: Job, args: argparse.Namespace, committed: dict) -> None:
    """A teacher kept with the results: its model and figures become the seed's teacher run
    dir, as if it had just been trained."""
    folder = os.path.join(job.run_dir(args.out_dir), STAGE_DIRS["teacher"])
    os.makedirs(folder, exist_ok=True)
    kept_file = teacher_file(args.results, job.seed)
    shutil.copy(kept_file, os.path.join(folder, layout.FINAL_MODEL))
    stages = {"teacher": {"given": os.path.relpath(kept_file, ROOT),
                          "steps": committed.get("steps")},
              "teacher/eval": {"top1": committed["teacher_top1"]}}
    write_json_atomic(os.path.join(job.run_dir(args.out_dir), layout.MANIFEST),
                      {"settings": {}, "stages": stages})
    write_record(job, args, {**committed, "adopted_from": stages["teacher"]["given"]})


def teacher_file(results: str, seed: int) -> str:
    """Where a finished teacher is kept beside the results, so that a later session reuses it
    (a seed's pairs need its one teacher) instead of training another."""
    return os.path.join(os.path.splitext(results)[0] + "_teachers", f"seed{seed}.keras")


def keep_teacher(job: Job, args: argparse.Namespace) -> None:
    """Copies a freshly trained teacher beside the results (atomically)."""
    source = os.path.join(job.run_dir(args.out_dir), STAGE_DIRS["teacher"],
                          layout.FINAL_MODEL)
    target = teacher_file(args.results, job.seed)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy(source, target + ".tmp")
    os.replace(target + ".tmp", target)


def write_record(job: Job, args: argparse.Namespace, record: dict) -> None:
    os.makedirs(os.path.dirname(record_path(args.out_dir, job)), exist_ok=True)
    write_json_atomic(record_path(args.out_dir, job), record)
    print(f"{job.name}: done, top-1 {record['student_top1'] or record['teacher_top1']}",
          flush=True)


def run_job(job: Job, args: argparse.Namespace) -> int:
    if job.arm in ALIASES:
        copy_alias(job, args)
        return 0
    kept = committed_teachers(args.results).get(job.seed)
    if job.kind == "teacher" and kept and os.path.exists(teacher_file(args.results, job.seed)):
        adopt_teacher(job, args, kept)
        return 0
    prepare_job(job, args.out_dir)
    commands = loop_commands(job, args)
    start = time.time()
    for command in commands:
        code = run_loop(args.flagfile, job_flags(job, args, args.passthrough) + command)
        if code:
            return code
    record = record_of(job, args, commands, time.time() - start)
    if args.mce_images and job.kind != "labels":
        record["mce"] = job_mce(job, args)
    if job.kind == "teacher":
        keep_teacher(job, args)
    write_record(job, args, record)
    return 0


def job_mce(job: Job, args: argparse.Namespace) -> float:
    from ablation_mce import mean_corruption_error

    return mean_corruption_error(job.run_dir(args.out_dir), last_iteration(job), args.out_dir,
                                 args.mce_images, claim)


def backfill_mce(args: argparse.Namespace) -> int:
    """Scores every finished job whose record has no mCE yet and whose model is still here (a
    kept teacher is adopted first); the scored record joins out_dir/records, overriding the
    committed one. Jobs whose models are gone are named, with the job to rerun."""
    arms, teachers = merged_records(args.out_dir, args.results)
    jobs = [(Job("teacher", seed), record) for seed, record in sorted(teachers.items())]
    jobs += [(Job("arm", seed, arm), record) for arm in arms
             for seed, record in sorted(arms[arm].items())]
    missing = []
    for job, record in jobs:
        if record.get("mce") is not None or record.get("same_as"):
            continue
        model = os.path.join(job.run_dir(args.out_dir), layout.model_dir(last_iteration(job)),
                             layout.FINAL_MODEL)
        kept = teacher_file(args.results, job.seed)
        if not os.path.exists(model) and job.kind == "teacher" and os.path.exists(kept):
            adopt_teacher(job, args, record)
        if not os.path.exists(model):
            missing.append(job.name)
            continue
        lock = os.path.join(args.out_dir, "locks", f"{job.name}_mce")
        if not claim(lock):
            continue  # another worker scores it
        try:
            fresh = read_json(record_path(args.out_dir, job)) or record
            if fresh.get("mce") is None:
                write_record(job, args, {**fresh, "mce": job_mce(job, args),
                                         "mce_images": args.mce_images})
        finally:
            shutil.rmtree(lock, ignore_errors=True)
    if missing:
        print(f"no model left to score for {', '.join(missing)}: rerun those jobs (delete "
              "their records here and drop them from --results) to get their mCE", flush=True)
    return 0


def committed_teachers(results: str) -> dict[int, dict]:
    """The teacher records kept with the results, by seed."""
    kept = read_json(teachers_path(results)) or {}
    return {record["seed"]: record for record in kept.get("seeds", [])}


def last_iteration(job: Job) -> int:
    return ARMS[job.arm].iterations if job.kind == "arm" and ARMS[job.arm].shares else 0


def work(args: argparse.Namespace) -> int:
    """Runs jobs until none is left; waits while the others' jobs block the rest."""
    committed = read_json(args.results) or {}
    while True:
        jobs = plan_jobs(args.seeds, args.arms, committed, args.extra_teacher_seeds)
        done = {job.name for job in jobs if os.path.exists(record_path(args.out_dir, job))}
        pending = [job for job in jobs if job.name not in done]
        if not pending:
            return 0
        names = {job.name for job in jobs}
        ready = [job for job in pending
                 if all(n.name in done or n.name not in names for n in job.needs())]
        for job in ready:
            lock = os.path.join(args.out_dir, "locks", job.name)
            if claim(lock):
                try:
                    code = run_job(job, args)
                finally:
                    shutil.rmtree(lock, ignore_errors=True)
                if code:
                    print(f"{job.name}: the loop exited with {code}; stopping", flush=True)
                    return code
                break
        else:
            time.sleep(30)  # every ready job is another worker's


def main(argv: list[str] | None = None) -> int:
    args, passthrough = parse_args(argv)
    args.passthrough = passthrough
    args.out_dir = os.path.abspath(args.out_dir)
    ALIASES.clear()
    ALIASES.update(find_aliases(args.flagfile, passthrough))
    if args.summarize:
        write_results(args.out_dir, args.results, list(ARMS), claims={
            name: arm.claim for name, arm in ARMS.items()}, baseline=args.baseline)
        return 0
    if args.tf_threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(
            args.tf_threads)
    build_data(args.data_dir, args.cifar_dir)
    code = backfill_mce(args) if args.backfill_mce else work(args)
    write_results(args.out_dir, args.results, list(ARMS),
                  claims={name: arm.claim for name, arm in ARMS.items()}, baseline=args.baseline)
    return code


if __name__ == "__main__":
    sys.exit(main())
