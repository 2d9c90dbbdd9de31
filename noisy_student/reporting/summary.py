"""The table a run prints at the end: one row per stage (accuracy, training diagnostics, images
labeled and kept, time) and per recorded benchmark result, then the teacher -> student gains.
A view of `rows.result_rows`; the manifest keeps the raw values."""

from __future__ import annotations

import os
from collections.abc import Sequence

from noisy_student.reporting.rows import ResultRow, clean_evaluations, model_label

HEADER = ("stage", "result", "seconds")


def data_total(rows: Sequence[ResultRow]) -> list[str]:
    """One line with the bad data of the whole run, if there was any."""
    skipped = sum(row.values.get("data_skipped", 0) for row in rows)
    damaged = sorted({os.path.basename(name) for row in rows
                      for name in row.values.get("data_damaged_files", {})})
    if not skipped and not damaged:
        return []
    return [f"bad data: {skipped} undecodable images skipped, {len(damaged)} damaged files "
            f"({', '.join(damaged) or '-'}; their records after the damage are lost)"]


def gains(rows: Sequence[ResultRow]) -> list[str]:
    """'teacher top-1 40.1% -> student 1 top-1 44.0% (+3.9 points)' per student whose model
    and teacher were both evaluated."""
    evaluated = {row.iteration: row.value for row in clean_evaluations(rows)}
    return [f"{model_label(i - 1)} top-1 {evaluated[i - 1]:.1%} -> student {i} top-1 "
            f"{evaluated[i]:.1%} ({(evaluated[i] - evaluated[i - 1]) * 100:+.1f} points)"
            for i in sorted(evaluated)
            if i > 0 and evaluated.get(i - 1) is not None and evaluated[i] is not None]


def format_table(rows: Sequence[ResultRow]) -> str:
    cells = [(row.name, row.text, f"{row.seconds or 0:.0f}") for row in rows]
    widths = [max(len(cell[i]) for cell in [HEADER, *cells]) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    body = [" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    header = " | ".join(c.ljust(w) for c, w in zip(HEADER, widths, strict=True))
    total = sum(float(row.seconds or 0) for row in rows)
    tail = [*gains(rows), *data_total(rows), f"total {total / 60:.1f} min"]
    return "\n".join([line, header, *body, line, *tail])
