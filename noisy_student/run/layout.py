"""Names inside a run directory: its stages, in order (`plan`), and its folders.

The one place that spells a stage name or a run-directory path; the loop, ``--mode``, the
report, the demo and the benchmarks build them here. No TensorFlow: the report and the
benchmarks read manifests without it.

    stage            kind     iteration  output folder
    teacher          train    0          teacher/
    teacher/eval     eval     0
    iterN/label      label    N          iterN/labels/
    iterN/filter     filter   N          iterN/filtered/
    iterN/student    train    N          iterN/student/
    iterN/eval       eval     N
    export           export   -          export/ (or --export_dir)
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Protocol

TRAIN, EVAL, LABEL, FILTER, EXPORT = "train", "eval", "label", "filter", "export"
# The kinds of an iteration N >= 1 in the order the loop runs them (iteration 0, the teacher,
# has only train and eval).
ITERATION_KINDS = (LABEL, FILTER, TRAIN, EVAL)

MANIFEST = "manifest.json"
# The manifest's record of benchmark results (noisy-student-eval on a run directory, --mode=eval
# with a robustness --eval_benchmark): {eval stage name of the model: {benchmark: result}}.
EVALUATIONS = "evaluations"
FINAL_MODEL = "model.keras"  # in a model folder: the trained model with its EMA weights
TEACHER_DIR = "teacher"
EXPORT_DIR = "export"
EVAL_DIR = "eval"  # robustness results per model: eval/iterN/
_ITERATION = "iter{}"
_STUDENT_DIR, _LABELS_DIR, _FILTERED_DIR = "student", "labels", "filtered"
_ITERATION_NAME = re.compile(r"iter([1-9]\d*)")


class PlanConfig(Protocol):
    """What `plan` reads from a run's configuration."""

    student_models: list[str]
    on_the_fly_teacher: bool


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a run: what it does (`kind`) for which model (`iteration`, 0 = teacher;
    None for export, which follows the last student)."""

    kind: str
    iteration: int | None = None

    @property
    def name(self) -> str:
        """The stage's name in the manifest and the log."""
        return stage_name(self.kind, self.iteration)


def stage_name(kind: str, iteration: int | None = None) -> str:
    """The manifest name of a stage: ``teacher``, ``teacher/eval``, ``iterN/label|filter|
    student|eval`` or ``export``."""
    if kind == EXPORT:
        return EXPORT
    if kind not in ITERATION_KINDS or iteration is None or iteration < 0:
        raise ValueError(f"no stage of kind {kind!r} for iteration {iteration!r}")
    if iteration == 0:
        if kind not in (TRAIN, EVAL):
            raise ValueError(f"the teacher (iteration 0) has no {kind} stage")
        return TEACHER_DIR if kind == TRAIN else f"{TEACHER_DIR}/{EVAL}"
    prefix = _ITERATION.format(iteration)
    return f"{prefix}/{_STUDENT_DIR if kind == TRAIN else kind}"


def parse_stage(name: str) -> Stage | None:
    """The stage a manifest name stands for, or None for a name no loop writes."""
    if name == EXPORT:
        return Stage(EXPORT)
    head, _, tail = name.partition("/")
    if head == TEACHER_DIR:
        return {"": Stage(TRAIN, 0), EVAL: Stage(EVAL, 0)}.get(tail)
    match = _ITERATION_NAME.fullmatch(head)
    kinds = {_STUDENT_DIR: TRAIN, LABEL: LABEL, FILTER: FILTER, EVAL: EVAL}
    if match is None or tail not in kinds:
        return None
    return Stage(kinds[tail], int(match[1]))


def plan(config: PlanConfig) -> list[Stage]:
    """Every stage of a run, in the order the loop runs them: the teacher and its evaluation,
    per student model label, filter (not with an on-the-fly teacher), student and evaluation,
    then the export."""
    stages = [Stage(TRAIN, 0), Stage(EVAL, 0)]
    for iteration in range(1, len(config.student_models) + 1):
        kinds = ITERATION_KINDS[2:] if config.on_the_fly_teacher else ITERATION_KINDS
        stages += [Stage(kind, iteration) for kind in kinds]
    return [*stages, Stage(EXPORT)]


# The --mode values that run one stage, and the kind of stage each runs (teacher: the teacher's
# training, student: a student's).
MODE_KINDS = {"teacher": TRAIN, "label": LABEL, "filter": FILTER, "student": TRAIN, "eval": EVAL,
              "export": EXPORT}


def stage_for_mode(mode: str, iteration: int) -> Stage:
    """The stage ``--mode=mode --iteration=iteration`` runs."""
    kind = MODE_KINDS[mode]
    if kind == EXPORT:
        return Stage(EXPORT)
    return Stage(kind, 0 if mode == "teacher" else iteration)


def stage_order(name: str) -> tuple[float, int]:
    """Sort key putting stage names in the order a loop runs them (manifests are stored with
    sorted keys); export and unknown names last."""
    stage = parse_stage(name)
    if stage is None or stage.iteration is None:
        return float("inf"), 0
    return stage.iteration, ITERATION_KINDS.index(stage.kind)


def iterations(stage_names) -> list[int]:
    """The iterations (0 = teacher) that the stage names reach without a gap, in order."""
    present = {stage.iteration for stage in map(parse_stage, stage_names)
               if stage is not None and stage.iteration is not None}
    found = [0] if 0 in present else []
    iteration = 1
    while iteration in present:
        found.append(iteration)
        iteration += 1
    return found


# ----------------------------------------------------------------------------- folders
def model_dir(iteration: int) -> str:
    """The folder of the model of an iteration (0 = teacher): checkpoints, logs, model.keras."""
    return TEACHER_DIR if iteration == 0 else os.path.join(_ITERATION.format(iteration),
                                                           _STUDENT_DIR)


def labels_dir(iteration: int) -> str:
    """The pseudo-labeled shards the teacher of an iteration writes."""
    return os.path.join(_ITERATION.format(iteration), _LABELS_DIR)


def filtered_dir(iteration: int | str) -> str:
    """The balanced student records of an iteration (or of every iteration matching a glob
    such as "*"), with stats.json and the histogram."""
    return os.path.join(_ITERATION.format(iteration), _FILTERED_DIR)


def eval_dir(iteration: int) -> str:
    """Robustness results of the model of an iteration (noisy-student-eval)."""
    return os.path.join(EVAL_DIR, _ITERATION.format(iteration))


def stage_output(stage: Stage) -> str | None:
    """The folder a stage writes, deleted when it is redone (None: it writes only results)."""
    if stage.kind == TRAIN:
        return model_dir(stage.iteration)
    return {LABEL: labels_dir, FILTER: filtered_dir}.get(stage.kind, lambda _: None)(
        stage.iteration)
