"""Ablations of student 1 on CIFAR-10 with 4,000 labels, all from one finished teacher.

Each variant is a new run directory under --out_dir that starts from the teacher (and, where
the variant does not change them, the pseudo labels and the filtered set) of --source_run, a
run of ``benchmarks/self_training_cifar10.py``; those are hard-linked, not recomputed. The
loop then runs what is left (labeling and filtering where the variant changes them, student 1,
its evaluation) with the flagfile, the variant's flags and any further --flag=value given here
(e.g. a shorter --student_epochs). Rerunning resumes unfinished variants and skips finished
ones. With --recipe_from_source the recipe row is the source run's own student 1 (hard-linked,
not retrained): right when the source ran the flagfile at the same budget and seed.

Variants (the paper's claims: each of noise, soft labels and filtering helps):
  recipe      the flagfile's student (reference point at this budget)
  no_noise    dropout 0, stochastic depth 0, no RandAugment
  randaug     the recipe plus RandAugment N=2 M=5
  hard        hard (one-hot) pseudo labels instead of soft ones
  threshold0  no confidence filtering (--min_threshold=0)

    python benchmarks/cifar10_ablations.py --source_run=runs/cifar10_4000 --student_epochs=16
    python benchmarks/cifar10_ablations.py --source_run=runs/seed1 --seed=1 --recipe_from_source
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from self_training_cifar10 import ROOT, _fmt_pct, _fmt_time, check_passthrough, run_loop  # noqa: E402

sys.path.insert(0, ROOT)
from noisy_student import run_layout  # noqa: E402
from noisy_student.atomic_io import read_json, write_json_atomic, write_text_atomic  # noqa: E402

# variant -> (flags, stages of the source run it reuses besides the teacher)
VARIANTS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "recipe": ([], ("label", "filter")),
    "no_noise": (
        ["--dropout_rate=0", "--stochastic_depth_rate=0", "--randaug_num_layers=0"],
        ("label", "filter"),
    ),
    "randaug": (["--randaug_num_layers=2", "--randaug_magnitude=5"], ("label", "filter")),
    "hard": (["--teacher_softmax_temp=-1"], ()),
    "threshold0": (["--min_threshold=0"], ("label",)),
}
# stage -> folder it writes, relative to the run directory
STAGE_DIRS = {"teacher": run_layout.model_dir(0), "iter1/label": run_layout.labels_dir(1),
              "iter1/filter": run_layout.filtered_dir(1), "iter1/student": run_layout.model_dir(1)}


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--source_run",
        required=True,
        help="A run dir with a finished teacher (and iter1 label/filter).",
    )
    parser.add_argument("--out_dir", default=None, help="Default: SOURCE_RUN/ablations.")
    parser.add_argument(
        "--flagfile",
        default=os.path.join(ROOT, "noisy_student", "assets", "configs", "cifar10_4000.cfg"),
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"Comma-separated subset of {', '.join(VARIANTS)}.",
    )
    parser.add_argument(
        "--recipe_from_source",
        action="store_true",
        help="The recipe row is the source run's student 1 (same flagfile, budget and seed), "
        "not a retrained one.",
    )
    args, passthrough = parser.parse_known_args()
    check_passthrough(parser, passthrough)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    return args, passthrough


def read_manifest(run_dir: str) -> dict:
    return read_json(os.path.join(run_dir, run_layout.MANIFEST)) or {"settings": {},
                                                                      "stages": {}}


def seed_run_dir(source: str, target: str, reuse: tuple[str, ...]) -> None:
    """Hard-links the teacher (and the reused iter1 stages) of ``source`` into a new run dir
    and writes a manifest that lists them as finished; a no-op if ``target`` has a manifest."""
    if os.path.exists(os.path.join(target, run_layout.MANIFEST)):
        return
    stages = read_manifest(source)["stages"]
    wanted = ["teacher", "teacher/eval", *(f"iter1/{step}" for step in reuse)]
    missing = [stage for stage in wanted if stage not in stages]
    if missing:
        raise SystemExit(f"{source} has not finished {missing}; run the benchmark first")
    os.makedirs(target, exist_ok=True)
    for stage in wanted:
        folder = STAGE_DIRS.get(stage)
        if folder and not os.path.exists(os.path.join(target, folder)):
            shutil.copytree(
                os.path.join(source, folder), os.path.join(target, folder), copy_function=os.link
            )
    if os.path.exists(os.path.join(source, "labels.txt")):
        shutil.copy(os.path.join(source, "labels.txt"), target)
    manifest = {"settings": {}, "stages": {stage: stages[stage] for stage in wanted}}
    write_json_atomic(os.path.join(target, run_layout.MANIFEST), manifest)


def table(out_dir: str, variants: list[str], teacher_top1: float | None) -> str:
    lines = [
        f"Teacher: {_fmt_pct(teacher_top1)}",
        "",
        "| variant | student 1 top-1 | vs teacher | clean train | agreement with teacher "
        "| kept | steps | wall time (student) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in variants:
        stages = read_manifest(os.path.join(out_dir, name))["stages"]
        student = stages.get("iter1/student", {})
        top1 = stages.get("iter1/eval", {}).get("top1")
        gain = (
            "-" if top1 is None or teacher_top1 is None else f"{100 * (top1 - teacher_top1):+.2f}"
        )
        lines.append(
            f"| {name} | {_fmt_pct(top1)} | {gain} | {_fmt_pct(student.get('clean_train_top1'))} "
            f"| {_fmt_pct(student.get('train_unlabeled_agreement'))} "
            f"| {stages.get('iter1/filter', {}).get('num_kept', '-')} "
            f"| {student.get('steps', '-')} | {_fmt_time(float(student.get('seconds', 0)))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    args, passthrough = parse_args()
    source = os.path.join(ROOT, args.source_run)
    out_dir = os.path.join(ROOT, args.out_dir or os.path.join(args.source_run, "ablations"))
    variants = args.variants.split(",")
    for name in variants:
        flags, reuse = VARIANTS[name]
        if name == "recipe" and args.recipe_from_source:
            reuse = (*reuse, "student", "eval")
        run_dir = os.path.join(out_dir, name)
        seed_run_dir(source, run_dir, reuse)
        start = time.time()
        code = run_loop(
            args.flagfile, [f"--run_dir={run_dir}", "--student_models=b0", *flags, *passthrough]
        )
        print(f"{name}: exit code {code}, {_fmt_time(time.time() - start)}", flush=True)
        if code:
            return code
    text = "# Student 1 ablations, CIFAR-10 with 4,000 labels\n\n" + table(
        out_dir, variants, read_manifest(source)["stages"].get("teacher/eval", {}).get("top1")
    )
    print(text)
    write_text_atomic(os.path.join(out_dir, "summary.md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
