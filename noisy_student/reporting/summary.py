"""The table a run prints at the end: one row per stage (accuracy, training diagnostics, images
labeled and kept, time), then the teacher -> student gains. The manifest keeps the raw values."""

from __future__ import annotations

import os

from noisy_student.run.layout import EVAL, FILTER, LABEL, parse_stage, stage_name

HEADER = ("stage", "result", "seconds")


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def training_text(result: dict) -> str:
    """A training stage: steps, then epoch-averaged accuracy on the (noised) labeled batches,
    the clean accuracy of the EMA model on labeled training images and, for students, how
    often they agree with the teacher's pseudo labels."""
    parts = [f"{result.get('model', '?')}: {result['steps']} steps"]
    if result.get("resumed_from_step"):
        parts.append(f"resumed at step {result['resumed_from_step']} (seconds: that sitting's)")
    if "train_accuracy" in result:
        parts.append(f"train acc {_percent(result['train_accuracy'])}")
    if "clean_train_top1" in result:
        parts.append(f"clean train acc {_percent(result['clean_train_top1'])}")
    if "train_unlabeled_agreement" in result:  # students only
        parts.append(f"agrees with teacher {_percent(result['train_unlabeled_agreement'])}")
    return ", ".join(parts)


def data_note(result: dict) -> str:
    """' [3 undecodable skipped; damaged: a, b]' when a stage met bad data, else ''."""
    skipped, damaged = result.get("data_skipped", 0), result.get("data_damaged_files", {})
    parts = [f"{skipped} undecodable skipped"] if skipped else []
    if damaged:
        parts.append(f"damaged: {', '.join(os.path.basename(name) for name in damaged)}")
    return f" [{'; '.join(parts)}]" if parts else ""


def data_total(stages: dict) -> list[str]:
    """One line with the bad data of the whole run, if there was any."""
    skipped = sum(result.get("data_skipped", 0) for result in stages.values())
    damaged = sorted({os.path.basename(name) for result in stages.values()
                      for name in result.get("data_damaged_files", {})})
    if not skipped and not damaged:
        return []
    return [f"bad data: {skipped} undecodable images skipped, {len(damaged)} damaged files "
            f"({', '.join(damaged) or '-'}; their records after the damage are lost)"]


def stage_rows(stages: dict) -> list[tuple[str, str, str]]:
    """(stage, result, seconds) rows in manifest order."""
    rows = []
    for name, result in stages.items():
        kind = getattr(parse_stage(name), "kind", None)
        if kind == EVAL:
            top5 = f", top-5 {_percent(result['top5'])}" if "top5" in result else ""
            text = (
                f"top-1 {_percent(result.get('top1'))}{top5} on "
                f"{result.get('num_examples', '?')} test images"
            )
        elif kind == LABEL:
            text = f"{result.get('num_labeled', 0)} images labeled"
        elif kind == FILTER:
            text = f"{result.get('num_kept', 0)} kept, {result.get('num_written', 0)} written"
        elif "steps" in result:
            text = training_text(result)
        else:
            text = str(result.get("export_dir", result.get("given", "")))
        rows.append((name, text + data_note(result), f"{result.get('seconds', 0):.0f}"))
    return rows


def gains(stages: dict) -> list[str]:
    """'teacher 40.1% -> student 1 44.0% (+3.9 points)' per iteration with both evaluations."""
    lines, previous, label = [], stages.get(stage_name(EVAL, 0), {}).get("top1"), "teacher"
    iteration = 1
    while stage_name(EVAL, iteration) in stages:
        current = stages[stage_name(EVAL, iteration)].get("top1")
        if previous is not None and current is not None:
            lines.append(
                f"{label} top-1 {previous:.1%} -> student {iteration} top-1 {current:.1%} "
                f"({(current - previous) * 100:+.1f} points)"
            )
        previous, label, iteration = current, f"student {iteration}", iteration + 1
    return lines


def format_table(stages: dict) -> str:
    rows = stage_rows(stages)
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    body = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    header = " | ".join(c.ljust(w) for c, w in zip(HEADER, widths, strict=True))
    total = sum(float(result.get("seconds", 0)) for result in stages.values())
    tail = [*gains(stages), *data_total(stages), f"total {total / 60:.1f} min"]
    return "\n".join([line, header, *body, line, *tail])
