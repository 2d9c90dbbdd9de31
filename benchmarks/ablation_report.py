"""The results of benchmarks/cifar10_ablations.py: the committed JSON (per arm, per-seed
records), a markdown table (mean +- sd over seeds, paired difference to `recipe` with its 95%
t-interval) and a plot, merged from the committed file and a run's new records."""

from __future__ import annotations

import glob
import json
import os
import re

from paired_stats import mean_sd, paired_difference

REFERENCE = "recipe"
_RECORD_NAME = re.compile(r"seed(\d+)_(.+)\.json$")


def _read(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def merged_records(out_dir: str, results_path: str) -> tuple[dict, dict]:
    """({arm: {seed: record}}, {seed: teacher record}): the committed results, overridden by
    the records in `out_dir/records/`."""
    arms: dict[str, dict[int, dict]] = {}
    for arm, records in _read(results_path).items():
        arms[arm] = {r["seed"]: _portable(r, out_dir) for r in records}
    teachers = {r["seed"]: _portable(r, out_dir)
                for r in _read(teachers_path(results_path)).get("seeds", [])}
    for path in sorted(glob.glob(os.path.join(out_dir, "records", "*.json"))):
        match = _RECORD_NAME.search(os.path.basename(path))
        if not match:
            continue
        seed, job = int(match.group(1)), match.group(2)
        record = _portable(_read(path), out_dir)
        if job == "teacher":
            teachers[seed] = record
        elif job != "labels":
            arms.setdefault(job, {})[seed] = record
    return arms, teachers


def _portable(record: dict, out_dir: str) -> dict:
    """`record` with the run dirs in its commands written as <out_dir>/... (results are
    committed: no machine paths in them)."""
    commands = record.get("command")
    if not isinstance(commands, list):
        return record
    prefix = os.path.abspath(out_dir)
    return {**record, "command": [c.replace(prefix, "<out_dir>") for c in commands]}


def teachers_path(results_path: str) -> str:
    return results_path.replace(".json", "_teachers.json")


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def _present(records: dict, key: str) -> list[float]:
    """The values of `key` that the records ({seed: record}) have."""
    return [r[key] for r in records.values() if r.get(key) is not None]


def _spread(values: list[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{_pct(mean)} +- {_pct(sd)}" if sd is not None else _pct(mean)


def direction(difference: dict | None) -> str:
    """How an arm compares with the recipe, in words."""
    if difference is None or difference["n"] < 2:
        return "too few seeds"
    if not difference["excludes_zero"]:
        needed = difference.get("seeds_to_exclude_zero")
        return "no clear difference" + (f" (~{needed} seeds would resolve it if the spread "
                                         "holds)" if needed else "")
    return "arm better" if difference["mean"] > 0 else "recipe better"


def table(arms: dict, teachers: dict, order: list[str], claims: dict[str, str]) -> str:
    teacher_top1 = _present(teachers, "teacher_top1")
    lines = ["# Noisy Student ablations, CIFAR-10 with 4,000 labels", ""]
    if teacher_top1:
        teacher_mces = _present(teachers, "mce")
        robustness = (f"; mean corruption error {_spread(teacher_mces)}% over "
                      f"{len(teacher_mces)}" if teacher_mces else "")
        lines.append(f"Teachers: {_spread(teacher_top1)}% top-1 over {len(teacher_top1)} "
                     f"seed{'s' if len(teacher_top1) != 1 else ''} "
                     f"({', '.join(_pct(v) for v in teacher_top1)}){robustness}.")
        lines.append("")
    rows = []
    reference = {s: r["student_top1"] for s, r in arms.get(REFERENCE, {}).items()}
    for arm in [a for a in order if a in arms] + sorted(set(arms) - set(order)):
        records = arms[arm]
        top1 = {s: r["student_top1"] for s, r in records.items() if r.get("student_top1")}
        if not top1:
            continue
        mces = _present(records, "mce")
        diff = None if arm == REFERENCE else paired_difference(top1, reference)
        if diff is None:
            versus = "-"
        elif diff["low"] is None:
            versus = f"{_pct(diff['mean'], True)} (n=1)"
        else:
            versus = (f"{_pct(diff['mean'], True)} [{_pct(diff['low'], True)}, "
                      f"{_pct(diff['high'], True)}], n={diff['n']}")
        rows.append(
            f"| {arm} | {claims.get(arm, '')} | {','.join(map(str, sorted(top1)))} "
            f"| {_spread(list(top1.values()))} | {versus} "
            f"| {'-' if arm == REFERENCE else direction(diff)} "
            f"| {_spread(mces) if mces else '-'} |")
    if rows:  # a teachers-only run (the spread under another teacher recipe) has none
        lines += ["| arm | claim tested | seeds | student top-1 % (mean +- sd) | minus recipe, "
                  "points (mean [95% CI], n) | verdict | mean corruption error % |",
                  "| --- | --- | --- | --- | --- | --- | --- |", *rows]
    return "\n".join(lines) + "\n"


def plot(arms: dict, order: list[str], path: str) -> None:
    """Left: each arm's student top-1 per seed and mean; right: paired difference to the
    recipe with its 95% interval."""
    from matplotlib.figure import Figure

    names = [a for a in order if arms.get(a)]
    reference = {s: r["student_top1"] for s, r in arms.get(REFERENCE, {}).items()}
    figure = Figure(figsize=(12, 0.45 * len(names) + 1.5), dpi=100)
    left, right = figure.subplots(1, 2, sharey=True)
    for row, arm in enumerate(names):
        values = [100 * r["student_top1"] for r in arms[arm].values() if r.get("student_top1")]
        left.scatter(values, [row] * len(values), color="tab:blue", s=14)
        if values:
            left.scatter([sum(values) / len(values)], [row], color="black", marker="|", s=200)
        diff = paired_difference({s: r["student_top1"] for s, r in arms[arm].items()
                                  if r.get("student_top1")}, reference)
        if arm != REFERENCE and diff is not None:
            low = diff["low"] if diff["low"] is not None else diff["mean"]
            high = diff["high"] if diff["high"] is not None else diff["mean"]
            right.plot([100 * low, 100 * high], [row, row], color="tab:red")
            right.scatter([100 * diff["mean"]], [row], color="tab:red", s=18)
    right.axvline(0, color="gray", linewidth=0.8)
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlabel("student top-1 % (dots: seeds, bar: mean)")
    right.set_xlabel("minus recipe, points (paired mean, 95% t-interval)")
    figure.tight_layout()
    tmp = path + ".tmp.png"
    figure.savefig(tmp)
    os.replace(tmp, path)


def write_results(out_dir: str, results_path: str, order: list[str],
                  claims: dict[str, str]) -> str:
    """Writes the merged results JSON (per arm: records sorted by seed), the teachers' JSON,
    the markdown table and the plot beside `results_path`; returns the table."""
    arms, teachers = merged_records(out_dir, results_path)
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    arm_names = [a for a in order if a in arms] + sorted(set(arms) - set(order))
    _write_json(results_path, {arm: [arms[arm][s] for s in sorted(arms[arm])]
                               for arm in arm_names})
    teacher_top1 = _present(teachers, "teacher_top1")
    summary = {"seeds": [teachers[s] for s in sorted(teachers)]}
    if teacher_top1:
        mean, sd = mean_sd(teacher_top1)
        summary.update(mean_top1=mean, sd_top1=sd, n=len(teacher_top1))
    teacher_mces = _present(teachers, "mce")
    if teacher_mces:
        mean, sd = mean_sd(teacher_mces)
        summary.update(mean_mce=mean, sd_mce=sd, n_mce=len(teacher_mces))
    _write_json(teachers_path(results_path), summary)
    text = table(arms, teachers, order, claims)
    base = os.path.splitext(results_path)[0]
    tmp = base + ".md.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, base + ".md")
    if arm_names:
        plot(arms, order, base + ".png")
    print(text)
    return text


def _write_json(path: str, data) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)
