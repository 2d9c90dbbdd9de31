"""A run's results as rows, read from its manifest by `result_rows`: one per finished stage, in
the order the loop runs them, then one per benchmark result recorded for the run's models
(``noisy-student-eval`` on the run directory, ``--mode=eval`` with a robustness benchmark). The
final table (`summary`), report.md (`report`) and the demo's table and plot are views of these
rows. No TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping

from noisy_student.run.layout import (
    EVAL,
    EVALUATIONS,
    FILTER,
    LABEL,
    TRAIN,
    parse_stage,
    stage_order,
)

BENCHMARK = "benchmark"  # the kind of a recorded evaluation's row
# The headline metric of each benchmark: the first of these its result has.
HEADLINES = {"clean": ("top1",), "imagenet_a": ("top1",), "imagenet_r": ("top1",),
             "imagenet_c": ("mCE",), "corrupted": ("mCE", "mean_error"),
             "imagenet_p": ("mean_flip_probability",)}


def percent(value, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def model_label(iteration: int) -> str:
    """'teacher' (iteration 0) or 'student N'."""
    return "teacher" if iteration == 0 else f"student {iteration}"


@dataclasses.dataclass(frozen=True)
class ResultRow:
    """One result of a run: a stage (`kind` from run.layout) or a recorded benchmark result
    (`kind` BENCHMARK), for the model of `iteration` (0 = teacher; None: the export), with the
    values the manifest holds."""

    name: str
    kind: str | None
    iteration: int | None
    values: Mapping
    benchmark: str | None = None

    @classmethod
    def of_stage(cls, name: str, values: Mapping) -> ResultRow:
        stage = parse_stage(name)
        return cls(name, getattr(stage, "kind", None), getattr(stage, "iteration", None), values,
                   "clean" if getattr(stage, "kind", None) == EVAL else None)

    @property
    def model(self) -> str:
        return "" if self.iteration is None else model_label(self.iteration)

    @property
    def seconds(self) -> float | None:
        return self.values.get("seconds")

    @property
    def metric(self) -> str | None:
        """The headline metric's name (an evaluation's), or None."""
        names = HEADLINES.get(self.benchmark, ())
        return next((name for name in names if self.values.get(name) is not None),
                    names[0] if names else None)

    @property
    def value(self) -> float | None:
        return self.values.get(self.metric) if self.metric else None

    @property
    def text(self) -> str:
        """The result in one line, with the bad data the stage met."""
        values = self.values
        if self.kind == BENCHMARK:
            partial = f" (partial: {values['partial']})" if values.get("partial") else ""
            images = f" on {values['num_examples']} images" if "num_examples" in values else ""
            text = f"{self.benchmark}: {self.metric} {percent(self.value)}{partial}{images}"
        elif self.kind == EVAL:
            top5 = f", top-5 {percent(values['top5'])}" if "top5" in values else ""
            text = (f"top-1 {percent(values.get('top1'))}{top5} on "
                    f"{values.get('num_examples', '?')} test images")
        elif self.kind == LABEL:
            text = f"{values.get('num_labeled', 0)} images labeled"
        elif self.kind == FILTER:
            text = f"{values.get('num_kept', 0)} kept, {values.get('num_written', 0)} written"
        elif "steps" in values:
            text = training_text(values)
        else:
            text = str(values.get("export_dir", values.get("given", "")))
        return text + data_note(values)


def training_text(result: Mapping) -> str:
    """A training stage: steps, then epoch-averaged accuracy on the (noised) labeled batches,
    the clean accuracy of the EMA model on labeled training images and, for students, how
    often they agree with the teacher's pseudo labels."""
    parts = [f"{result.get('model', '?')}: {result['steps']} steps"]
    if result.get("resumed_from_step"):
        parts.append(f"resumed at step {result['resumed_from_step']} (seconds: that sitting's)")
    if "train_accuracy" in result:
        parts.append(f"train acc {percent(result['train_accuracy'])}")
    if "clean_train_top1" in result:
        parts.append(f"clean train acc {percent(result['clean_train_top1'])}")
    if "train_unlabeled_agreement" in result:  # students only
        parts.append(f"agrees with teacher {percent(result['train_unlabeled_agreement'])}")
    return ", ".join(parts)


def data_note(result: Mapping) -> str:
    """' [3 undecodable skipped; damaged: a, b]' when a stage met bad data, else ''."""
    skipped, damaged = result.get("data_skipped", 0), result.get("data_damaged_files", {})
    parts = [f"{skipped} undecodable skipped"] if skipped else []
    if damaged:
        parts.append(f"damaged: {', '.join(os.path.basename(name) for name in damaged)}")
    return f" [{'; '.join(parts)}]" if parts else ""


def result_rows(manifest: Mapping) -> list[ResultRow]:
    """The rows of a manifest (or of a part of one: ``{"stages": {name: result}}``): its
    stages in run order, then its recorded evaluations by model and benchmark."""
    stages = manifest.get("stages", {})
    rows = [ResultRow.of_stage(name, stages[name]) for name in sorted(stages, key=stage_order)]
    for stage, results in sorted(manifest.get(EVALUATIONS, {}).items(),
                                 key=lambda item: stage_order(item[0])):
        iteration = parse_stage(stage).iteration
        rows += [ResultRow(f"{stage}/{benchmark}", BENCHMARK, iteration, results[benchmark],
                           benchmark) for benchmark in sorted(results)]
    return rows


def clean_evaluations(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The eval stages (top-1/top-5 on --eval_data) of the teacher and each student that has
    one, in order."""
    return [row for row in rows if row.kind == EVAL]


def training(rows: Iterable[ResultRow]) -> dict[int, ResultRow]:
    """{iteration: its training stage's row}."""
    return {row.iteration: row for row in rows if row.kind == TRAIN}
