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


def committed_records(results_path: str) -> tuple[dict, dict]:
    """({arm: {seed: record}}, {seed: teacher record}) of a committed results file."""
    arms = {arm: {r["seed"]: r for r in records} for arm, records in _read(results_path).items()}
    teachers = {r["seed"]: r for r in _read(teachers_path(results_path)).get("seeds", [])}
    return arms, teachers


def merged_records(out_dir: str, results_path: str) -> tuple[dict, dict]:
    """({arm: {seed: record}}, {seed: teacher record}): the committed results, overridden by
    the records in `out_dir/records/`."""
    arms, teachers = committed_records(results_path)
    arms = {arm: {s: _portable(r, out_dir) for s, r in records.items()}
            for arm, records in arms.items()}
    teachers = {s: _portable(r, out_dir) for s, r in teachers.items()}
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


def _versus(difference: dict | None) -> str:
    """A paired difference as `mean [low, high], n=N` in points."""
    if difference is None:
        return "-"
    if difference["low"] is None:
        return f"{_pct(difference['mean'], True)} (n=1)"
    return (f"{_pct(difference['mean'], True)} [{_pct(difference['low'], True)}, "
            f"{_pct(difference['high'], True)}], n={difference['n']}")


def _students(records: dict) -> dict[int, float]:
    return {s: r["student_top1"] for s, r in records.items() if r.get("student_top1")}


def _teacher_top1(teachers: dict) -> dict[int, float]:
    return {s: r["teacher_top1"] for s, r in teachers.items() if r.get("teacher_top1")}


# Flags that every job sets for itself (cifar10_ablations.job_flags, loop_commands).
_JOB_FLAGS = ("--flagfile=", "--run_dir=", "--seed=", "--checkpoint_every=", "--deterministic",
              "--mode=", "--iteration=", "--student_models=", "--train_epochs=")


def grid_flags(arms: dict, teachers: dict) -> list[str]:
    """The flags that every recorded command of the grid adds to the flagfile beyond a job's
    own (e.g. a RandAugment teacher for the whole grid), in command order."""
    commands = [c for records in [*arms.values(), teachers] for r in records.values()
                for c in r.get("command") or []]
    if not commands:
        return []
    common = set.intersection(*(set(c.split()[1:]) for c in commands))
    return [flag for flag in commands[0].split()[1:]
            if flag in common and not flag.startswith(_JOB_FLAGS)]


def comparison(arms: dict, teachers: dict, baseline_path: str) -> list[str]:
    """Markdown lines: this grid minus the grid of `baseline_path` (another committed results
    file), paired by seed, for the teachers and for every arm both have."""
    base_arms, base_teachers = committed_records(baseline_path)
    rows = [("teachers", _teacher_top1(teachers), _teacher_top1(base_teachers))]
    rows += [(arm, _students(arms[arm]), _students(base_arms[arm]))
             for arm in arms if arm in base_arms]
    lines = [f"Against `{os.path.basename(baseline_path)}` (this grid minus that one, paired "
             "by seed):", "",
             "| model | seeds | this grid % | that grid % | difference, points "
             "(mean [95% CI], n) |", "| --- | --- | --- | --- | --- |"]
    for name, ours, theirs in rows:
        difference = paired_difference(ours, theirs)
        if difference is None:
            continue
        seeds = difference["seeds"]
        lines.append(f"| {name} | {','.join(map(str, seeds))} "
                     f"| {_spread([ours[s] for s in seeds])} "
                     f"| {_spread([theirs[s] for s in seeds])} | {_versus(difference)} |")
    return lines + [""]


def direction(difference: dict | None) -> str:
    """How an arm compares with the recipe, in words."""
    if difference is None or difference["n"] < 2:
        return "too few seeds"
    if not difference["excludes_zero"]:
        needed = difference.get("seeds_to_exclude_zero")
        return "no clear difference" + (f" (~{needed} seeds would resolve it if the spread "
                                         "holds)" if needed else "")
    return "arm better" if difference["mean"] > 0 else "recipe better"


def table(arms: dict, teachers: dict, order: list[str], claims: dict[str, str],
          baseline: str | None = None) -> str:
    teacher_top1 = _present(teachers, "teacher_top1")
    lines = ["# Noisy Student ablations, CIFAR-10 with 4,000 labels", ""]
    extra = grid_flags(arms, teachers)
    lines += [f"Every job adds to the flagfile: `{' '.join(extra)}`.", ""] if extra else []
    if teacher_top1:
        teacher_mces = _present(teachers, "mce")
        robustness = (f"; mean corruption error {_spread(teacher_mces)}% over "
                      f"{len(teacher_mces)}" if teacher_mces else "")
        lines.append(f"Teachers: {_spread(teacher_top1)}% top-1 over {len(teacher_top1)} "
                     f"seed{'s' if len(teacher_top1) != 1 else ''} "
                     f"({', '.join(_pct(v) for v in teacher_top1)}){robustness}.")
        lines.append("")
    rows = []
    reference = _students(arms.get(REFERENCE, {}))
    seed_teachers = _teacher_top1(teachers)
    for arm in [a for a in order if a in arms] + sorted(set(arms) - set(order)):
        records = arms[arm]
        top1 = _students(records)
        if not top1:
            continue
        mces = _present(records, "mce")
        diff = None if arm == REFERENCE else paired_difference(top1, reference)
        teacher_of = {**seed_teachers, **{s: r["teacher_top1"] for s, r in records.items()
                                          if r.get("teacher_top1")}}
        rows.append(
            f"| {arm} | {claims.get(arm, '')} | {','.join(map(str, sorted(top1)))} "
            f"| {_spread(list(top1.values()))} "
            f"| {_versus(paired_difference(top1, teacher_of))} | {_versus(diff)} "
            f"| {'-' if arm == REFERENCE else direction(diff)} "
            f"| {_spread(mces) if mces else '-'} |")
    if rows:  # a teachers-only run (the spread under another teacher recipe) has none
        lines += ["| arm | claim tested | seeds | student top-1 % (mean +- sd) | minus its "
                  "teacher, points (mean [95% CI], n) | minus recipe, points (mean [95% CI], "
                  "n) | verdict | mean corruption error % |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |", *rows, ""]
    if baseline:
        lines += comparison(arms, teachers, baseline)
    return "\n".join(lines).rstrip("\n") + "\n"


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
                  claims: dict[str, str], baseline: str | None = None) -> str:
    """Writes the merged results JSON (per arm: records sorted by seed), the teachers' JSON,
    the markdown table (with a paired comparison to the `baseline` results file, if given) and
    the plot beside `results_path`; returns the table."""
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
    text = table(arms, teachers, order, claims, baseline)
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
