"""Noisy Student on CIFAR-10 with 4,000 labels: data, the loop, and a results table.

1. Builds the TFRecords once (skipped when every shard is there) from the shared uint8 npz
   shards: the first 80 images of each class in each of the 5 train shards are the 4,000
   labeled images (400 per class), the other 46,000 train images are unlabeled (labels
   dropped), the 10,000 test images are the validation set. Images are stored as PNG
   (lossless), labels 1-based as in ImageNet files (the flagfile sets --label_offset=1).
2. Runs the loop through the CLI, ``python -m noisy_student.cli.main --flagfile=...``, passing any
   further ``--flag=value`` arguments through; rerunning resumes where a killed run stopped.
3. With ``--baseline``, trains a supervised baseline in RUN_DIR/baseline: the teacher's recipe
   on the labeled images only, with the student's noise (RandAugment, dropout, stochastic
   depth), for as many steps as the teacher and student 1 together, so that a student's gain
   can be told apart from extra compute.
4. Prints teacher/student top-1, gains, images labeled/kept and wall time per stage from the
   run's manifest.json, and writes the same table to RUN_DIR/summary.md.

    python benchmarks/self_training_cifar10.py                       # the full recipe
    python benchmarks/self_training_cifar10.py --train_epochs=0.5 --student_epochs=0.5 \
        --run_dir=runs/c10smoke                                      # a quick smoke run
    python benchmarks/self_training_cifar10.py --summary_only        # just the table
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared uint8 .npz shards: $CIFAR10_NPZ_DIR, else ../shared/data/cifar10 beside the checkout.
CIFAR_DIR = os.environ.get(
    "CIFAR10_NPZ_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10")
)
# Where the TFRecords go by default (configs/cifar10_4000.cfg reads them there).
DATA_DIR = os.path.join(ROOT, "runs", "cifar10_4000", "data")
LABELED_PER_CLASS_PER_SHARD = 80
NUM_CLASSES = 10
LABEL_BASE = 1
BUILD_TIME_FILE = "build_time.json"
SPLITS = {"train": 4, "unlabeled": 16, "validation": 4}  # split -> number of shards


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flagfile", default=os.path.join(
        ROOT, "noisy_student", "assets", "configs", "cifar10_4000.cfg"))
    parser.add_argument("--data_dir", default=DATA_DIR,
                        help="Where the TFRecords go (the flagfile's data patterns point here).")
    parser.add_argument("--cifar_dir", default=CIFAR_DIR, help="The uint8 npz shards.")
    parser.add_argument("--summary_only", action="store_true",
                        help="Only print/write the table of an existing run.")
    parser.add_argument("--baseline", action="store_true",
                        help="Also train the equal-steps supervised baseline (after the loop).")
    args, passthrough = parser.parse_known_args()
    check_passthrough(parser, passthrough)
    return args, passthrough


def check_passthrough(parser: argparse.ArgumentParser, passthrough: list[str]) -> None:
    """Arguments this script does not know go to the loop, and must be --flag=value."""
    bad = [arg for arg in passthrough if not arg.startswith("--")]
    if bad:
        parser.error(f"unexpected arguments {bad}; loop options are passed as --flag=value")


def choice_list(parser: argparse.ArgumentParser, flag: str, value: str,
                allowed: Iterable[str]) -> list[str]:
    """The comma-separated names of ``flag``'s ``value``; a parser error (exit status 2) for
    an unknown name or none at all."""
    allowed = list(allowed)
    names = [name for name in value.split(",") if name]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"{flag}: unknown {unknown}; choose from {', '.join(allowed)}")
    return names


# ----------------------------------------------------------------------------- data
def split_train(labels_per_shard: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per train shard, (labeled indices, unlabeled indices): the first 80 of each class are
    labeled, everything else unlabeled; both keep the shard's (random) order."""
    result = []
    for labels in labels_per_shard:
        labeled = np.zeros(len(labels), dtype=bool)
        for cls in range(NUM_CLASSES):
            members = np.flatnonzero(labels == cls)
            if len(members) < LABELED_PER_CLASS_PER_SHARD:
                raise ValueError(f"a train shard has only {len(members)} images of class {cls}; "
                                 f"need {LABELED_PER_CLASS_PER_SHARD}")
            labeled[members[:LABELED_PER_CLASS_PER_SHARD]] = True
        result.append((np.flatnonzero(labeled), np.flatnonzero(~labeled)))
    return result


def split_arrays(cifar_dir: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labeled images, their labels, unlabeled images) of the 50,000 training images, as the
    recipe's data splits them (`split_train` over the 5 npz shards, in shard order)."""
    shards = [load_npz(os.path.join(cifar_dir, f"cifar10_train_{i}.npz")) for i in range(5)]
    parts = split_train([labels for _, labels, _ in shards])
    pairs = list(zip(shards, parts, strict=True))
    return (np.concatenate([img[li] for (img, _, _), (li, _) in pairs]),
            np.concatenate([lab[li] for (_, lab, _), (li, _) in pairs]),
            np.concatenate([img[ui] for (img, _, _), (_, ui) in pairs]))


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def split_complete(data_dir: str, split: str, num_shards: int) -> bool:
    from noisy_student.data.shards import shard_name

    return all(os.path.exists(os.path.join(data_dir, shard_name(split, i, num_shards)))
               for i in range(num_shards))


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing; point --cifar_dir at the CIFAR-10 npz shards")
    with np.load(path, allow_pickle=False) as data:
        return data["images"], data["labels"], [str(n) for n in data["class_names"]]


def recorded_build_seconds(data_dir: str) -> float:
    """Seconds the data build took when it ran (0 if unknown)."""
    path = os.path.join(data_dir, BUILD_TIME_FILE)
    if not os.path.exists(path):
        return 0.0
    with open(path) as f:
        return float(json.load(f)["seconds"])


def build_data(data_dir: str, cifar_dir: str, splits: tuple[str, ...] = tuple(SPLITS)) -> float:
    """Writes those of ``splits`` that are not complete; returns the seconds the data build
    took in total (this call's added to what an earlier partial build recorded).
    ``benchmarks/cifar10_c.py`` asks for the validation split only."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; use some of {list(SPLITS)}")
    todo = [s for s in splits if not split_complete(data_dir, s, SPLITS[s])]
    if not todo:
        print(f"data: {', '.join(splits)} complete in {data_dir}, skipping")
        return recorded_build_seconds(data_dir)
    from noisy_student.atomic_io import write_json_atomic
    from noisy_student.data.labels_file import write_labels
    from noisy_student.data.records import encode_labeled, encode_unlabeled
    from noisy_student.data.shards import write_sharded

    start = time.time()
    test_images, test_labels, class_names = load_npz(os.path.join(cifar_dir, "cifar10_test.npz"))

    def labeled_items(x, y):
        return [(x[i], int(y[i])) for i in range(len(y))]

    def encode_item(item):
        return encode_labeled(png_bytes(item[0]), item[1] + LABEL_BASE)

    jobs = {"validation": lambda: (labeled_items(test_images, test_labels), encode_item)}
    if {"train", "unlabeled"} & set(todo):
        train_x, train_y, unlabeled_x = split_arrays(cifar_dir)
        counts = np.bincount(train_y, minlength=NUM_CLASSES)
        print(f"data: {len(train_y)} labeled (per class {counts.tolist()}), "
              f"{len(unlabeled_x)} unlabeled, {len(test_labels)} validation")
        jobs["train"] = lambda: (labeled_items(train_x, train_y), encode_item)
        jobs["unlabeled"] = lambda: (list(unlabeled_x),
                                     lambda image: encode_unlabeled(png_bytes(image)))
    write_labels(data_dir, class_names, LABEL_BASE)
    for split in todo:
        items, encode = jobs[split]()
        write_sharded(data_dir, split, items, SPLITS[split], encode, num_threads=2)
        print(f"data: wrote {len(items)} {split} records in {SPLITS[split]} shards")
    seconds = time.time() - start
    total = round(recorded_build_seconds(data_dir) + seconds, 1)  # as recorded
    write_json_atomic(os.path.join(data_dir, BUILD_TIME_FILE), {"seconds": total})
    print(f"data: built {', '.join(todo)} in {seconds:.0f} s")
    return total


# ----------------------------------------------------------------------------- loop
def flag_value(name: str, flagfile: str, passthrough: list[str]) -> str | None:
    """The last value given to --name in the flagfile or the passed-through flags."""
    value = None
    with open(flagfile) as f:
        lines = [line.strip() for line in f]
    for arg in lines + passthrough:
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value


def run_loop(flagfile: str, passthrough: list[str]) -> int:
    command = [sys.executable, "-m", "noisy_student.cli.main", f"--flagfile={flagfile}",
               *passthrough]
    print("loop:", " ".join(command), flush=True)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def baseline_epochs(flagfile: str, passthrough: list[str]) -> float:
    """Teacher epochs + student 1 epochs (--student_epochs, else --student_train_ratio x the
    teacher's, else the teacher's again)."""
    teacher = float(flag_value("train_epochs", flagfile, passthrough) or 350)
    student = flag_value("student_epochs", flagfile, passthrough)
    if student is None:
        student = teacher * float(flag_value("student_train_ratio", flagfile, passthrough) or 1)
    return teacher + float(student)


def run_baseline(flagfile: str, passthrough: list[str], run_dir: str) -> int:
    """The supervised baseline: --mode=teacher with the students' noise, then its evaluation.
    It always trains from scratch, so a --teacher_checkpoint given to the loop is dropped."""
    own = [arg for arg in passthrough if not arg.startswith("--teacher_checkpoint")]
    flags = [*own, f"--run_dir={os.path.join(run_dir, 'baseline')}", "--teacher_randaug",
             f"--train_epochs={baseline_epochs(flagfile, passthrough)}"]
    for mode in ("--mode=teacher", "--mode=eval --iteration=0"):
        code = run_loop(flagfile, [*flags, *mode.split()])
        if code:
            return code
    return 0


# ----------------------------------------------------------------------------- table
def _fmt_pct(value: float | None) -> str:
    return "TBD" if value is None else f"{100 * value:.2f}%"


def _fmt_gain(new: float | None, old: float | None) -> str:
    return "-" if new is None or old is None else f"{100 * (new - old):+.2f} pts"


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


def images_per_step(flagfile: str, passthrough: list[str]) -> dict[str, int]:
    """Training images per step: the teacher's labeled batch; a student's adds the
    pseudo-labeled part (--unlabel_ratio x the batch)."""
    batch = int(flag_value("train_batch_size", flagfile, passthrough) or 128)
    ratio = float(flag_value("unlabel_ratio", flagfile, passthrough) or 1)
    return {"teacher": batch, "student": batch + int(round(batch * ratio))}


def _throughput(result: dict, per_step: int | None) -> str:
    """Steps and training images/s of a training stage ('-' for other stages): over all its
    sittings when the stage recorded its training time, else over its last sitting."""
    steps, seconds = result.get("steps"), result.get("train_seconds")
    trained = steps
    if seconds is None:  # stages recorded before train_seconds existed
        seconds = float(result.get("seconds", 0.0))
        trained = (steps or 0) - result.get("resumed_from_step", 0)
    if not steps or not per_step or not seconds:
        return "- | -"
    return f"{steps} | {trained * per_step / seconds:.1f}"


def _wall_time(result: dict) -> str:
    """The stage's wall time; a resumed stage recorded its last sitting's only."""
    text = _fmt_time(float(result.get("seconds", 0.0)))
    if result.get("resumed_from_step"):
        text += f" (last sitting, from step {result['resumed_from_step']})"
    return text


def summary_table(manifest: dict, data_seconds: float | None = None,
                  per_step: dict[str, int] | None = None) -> str:
    """Markdown: accuracy per model with gains, images labeled/kept, and per stage the wall
    time, steps and training images/s (``per_step``: see images_per_step)."""
    from noisy_student.run.layout import (
        EVAL,
        FILTER,
        LABEL,
        TRAIN,
        iterations,
        parse_stage,
        stage_name,
        stage_order,
    )

    per_step = per_step or {}
    stages = manifest.get("stages", {})
    students = [i for i in iterations(stages) if i > 0]
    evals = [("teacher", stages.get(stage_name(EVAL, 0), {}).get("top1"))]
    evals += [(f"student {i}", stages.get(stage_name(EVAL, i), {}).get("top1")) for i in students]
    lines = ["| model | top-1 | gain over its teacher |", "| --- | --- | --- |"]
    previous = None
    for name, top1 in evals:
        lines.append(f"| {name} | {_fmt_pct(top1)} | {_fmt_gain(top1, previous)} |")
        previous = top1
    lines += ["", "| iteration | images labeled | kept (>= threshold) | records written |",
              "| --- | --- | --- | --- |"]
    for i in students:
        label = stages.get(stage_name(LABEL, i), {})
        filt = stages.get(stage_name(FILTER, i), {})
        labeled = filt.get("num_input_records", label.get("num_labeled", "TBD"))
        lines.append(f"| {i} | {labeled} | {filt.get('num_kept', 'TBD')} | "
                     f"{filt.get('num_written', 'TBD')} |")
    lines += ["", "| stage | wall time | steps | train img/s |", "| --- | --- | --- | --- |"]
    total = 0.0
    if data_seconds:
        lines.append(f"| data (TFRecords) | {_fmt_time(data_seconds)} | - | - |")
        total += data_seconds
    resumed = False
    for stage, result in sorted(stages.items(), key=lambda item: stage_order(item[0])):
        total += float(result.get("seconds", 0.0))
        resumed = resumed or bool(result.get("resumed_from_step"))
        parsed = parse_stage(stage)
        kind = ("" if parsed is None or parsed.kind != TRAIN
                else "teacher" if parsed.iteration == 0 else "student")
        lines.append(f"| {stage} | {_wall_time(result)} | "
                     f"{_throughput(result, per_step.get(kind))} |")
    at_least = ">= " if resumed else ""
    lines.append(f"| **total** | **{at_least}{_fmt_time(total)}** | | |")
    return "\n".join(lines) + "\n"


def baseline_line(run_dir: str, manifest: dict) -> str:
    """The supervised baseline's accuracy against student 1, if it was trained."""
    from noisy_student.run.layout import EVAL, MANIFEST, TRAIN, stage_name

    path = os.path.join(run_dir, "baseline", MANIFEST)
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        stages = json.load(f).get("stages", {})
    top1 = stages.get(stage_name(EVAL, 0), {}).get("top1")
    train = stages.get(stage_name(TRAIN, 0), {})
    student = manifest.get("stages", {}).get(stage_name(EVAL, 1), {}).get("top1")
    return (f"\nSupervised baseline (labeled images only, students' noise, "
            f"{train.get('steps')} steps = teacher + student 1, "
            f"{_fmt_time(float(train.get('seconds', 0.0)))}): top-1 {_fmt_pct(top1)}; "
            f"student 1 vs baseline {_fmt_gain(student, top1)}.\n")


def write_summary(run_dir: str, data_seconds: float | None,
                  per_step: dict[str, int] | None = None) -> None:
    from noisy_student.run.layout import MANIFEST

    manifest_path = os.path.join(run_dir, MANIFEST)
    if not os.path.exists(manifest_path):
        print(f"no {manifest_path} yet; nothing to summarize")
        return
    with open(manifest_path) as f:
        manifest = json.load(f)
    text = "# Noisy Student, CIFAR-10 with 4,000 labels\n\n" + summary_table(
        manifest, data_seconds, per_step)
    text += baseline_line(run_dir, manifest)
    print(text)
    tmp = os.path.join(run_dir, f".summary.md.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, os.path.join(run_dir, "summary.md"))


def main() -> int:
    sys.path.insert(0, ROOT)
    args, passthrough = parse_args()
    run_dir = flag_value("run_dir", args.flagfile, passthrough)
    if not run_dir:
        sys.exit(f"{args.flagfile} sets no --run_dir")
    run_dir = os.path.join(ROOT, run_dir)  # relative paths are relative to the repo root
    per_step = images_per_step(args.flagfile, passthrough)
    if args.summary_only:
        write_summary(run_dir, recorded_build_seconds(args.data_dir), per_step)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.time()
    data_seconds = build_data(args.data_dir, args.cifar_dir)
    code = run_loop(args.flagfile, passthrough)
    if code == 0 and args.baseline:
        code = run_baseline(args.flagfile, passthrough, run_dir)
    print(f"total wall time {_fmt_time(time.time() - start)} (loop exit code {code})")
    write_summary(run_dir, data_seconds, per_step)
    return code


if __name__ == "__main__":
    sys.exit(main())
