"""report.md for a finished (or partial) run directory: accuracy per iteration for the teacher
and each student, with training time, plus any robustness results in ``<run>/eval/iterN/``.

    python -c "from noisy_student.report import write_report; write_report('runs/cifar10_4000')"
"""

from __future__ import annotations

import os

import tensorflow as tf

from noisy_student.atomic_io import read_json, write_text_atomic

HEADLINES = {"imagenet_a": "top1", "imagenet_r": "top1", "imagenet_c": "mCE",
             "corrupted": "mCE", "imagenet_p": "mean_flip_probability"}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def iterations(manifest: dict) -> list[int]:
    """Iterations the manifest knows of (0 = teacher), in order."""
    stages = manifest.get("stages", {})
    found = [0] if any(s.startswith("teacher") for s in stages) else []
    n = 1
    while any(s.startswith(f"iter{n}/") for s in stages):
        found.append(n)
        n += 1
    return found


def report_markdown(run_dir: str) -> str:
    manifest = read_json(os.path.join(run_dir, "manifest.json"))
    if manifest is None:
        raise FileNotFoundError(f"{run_dir}: no manifest.json (not a run directory)")
    stages = manifest.get("stages", {})
    lines = [f"# Run report: {os.path.basename(os.path.normpath(run_dir))}", "",
             "| iteration | model | top-1 | top-5 | gain over its teacher (pts) | eval images "
             "| training time |", "| --- | --- | --- | --- | --- | --- | --- |"]
    previous = None
    for i in iterations(manifest):
        train = stages.get("teacher" if i == 0 else f"iter{i}/student", {})
        result = stages.get("teacher/eval" if i == 0 else f"iter{i}/eval", {})
        top1 = result.get("top1")
        gain = "-" if top1 is None or previous is None else f"{100 * (top1 - previous):+.2f}"
        name = "teacher" if i == 0 else f"student {i}"
        lines.append(f"| {name} | {train.get('model', '-')} | {_pct(top1)} | "
                     f"{_pct(result.get('top5'))} | {gain} | {result.get('num_examples', '-')} "
                     f"| {_minutes(train.get('seconds'))} |")
        previous = top1 if top1 is not None else previous
    robustness = []
    for i in iterations(manifest):
        folder = os.path.join(run_dir, "eval", f"iter{i}")
        for benchmark, key in HEADLINES.items():
            data = read_json(os.path.join(folder, f"{benchmark}.json")) if tf.io.gfile.isdir(
                folder) else None
            if data and data.get(key) is not None:
                robustness.append(f"| {'teacher' if i == 0 else f'student {i}'} | {benchmark} "
                                  f"| {key} | {_pct(data[key])} |")
    if robustness:
        lines += ["", "## Robustness", "", "| model | benchmark | metric | value |",
                  "| --- | --- | --- | --- |", *robustness]
    timed = [(s, v.get("seconds")) for s, v in stages.items() if isinstance(v, dict)]
    lines += ["", "## Stages", "", "| stage | wall time |", "| --- | --- |"]
    lines += [f"| {s} | {_minutes(t)} |" for s, t in timed]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str) -> str:
    """Writes ``<run_dir>/report.md`` (atomically) and returns its path."""
    path = os.path.join(run_dir, "report.md")
    write_text_atomic(path, report_markdown(run_dir))
    return path
