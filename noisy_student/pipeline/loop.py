"""The Noisy Student loop: teacher -> pseudo labels -> filter/balance -> noised student -> repeat.

A run lives in one directory. `manifest.json` records each finished stage with its results and
the settings each started stage depends on; rerunning the same command skips finished stages and
resumes the first unfinished one (training resumes from its last checkpoint, labeling skips
finished shards, filtering reuses its stats). `Run.prepare` (before any work) removes the temp
files of killed writers and stops with a RunError when the settings differ from the recorded
ones (or, with redo_changed_stages, deletes and redoes the affected stages). The CLI holds the
directory's lock (noisy_student.run.lock) meanwhile.

    run_dir/
      manifest.json              stages done, their results and timings
      labels.txt                 class names, copied from beside the labeled data (if there)
      teacher/                   checkpoints, TensorBoard logs, model.keras (EMA weights)
      iter1/labels/              pseudo-labeled shards written by the teacher
      iter1/filtered/            balanced student records, stats.json, histogram PNG
      iter1/student/             like teacher/
      export/                    SavedModel of the final model
      report.md, report/         written at the end of a loop (noisy_student.reporting.report)

Who owns what: stage names, their order (`plan`) and folder names in noisy_student.run.layout;
the manifest and the settings check in noisy_student.run.directory; the stage bodies in
noisy_student.pipeline.stages. This module runs them.
"""

from __future__ import annotations

import logging
import time

import tensorflow as tf

from noisy_student import console
from noisy_student.config import RunConfig
from noisy_student.pipeline.stages import STAGE_FUNCTIONS, Context
from noisy_student.reporting.rows import ResultRow
from noisy_student.run.directory import RunError
from noisy_student.run.layout import Stage, parse_stage, plan

__all__ = ["Run", "RunConfig", "RunError"]

log = logging.getLogger(__name__)


class Run:
    """One run: its stages (`plan`), run one at a time or all in order, each recorded in the
    run directory's manifest."""

    def __init__(self, config: RunConfig, strategy: tf.distribute.Strategy | None = None):
        if config.deterministic:  # process-wide, and for the rest of the process
            tf.config.experimental.enable_op_determinism()
        self.context = Context.create(config, strategy)

    @property
    def config(self) -> RunConfig:
        return self.context.config

    @property
    def chief(self) -> bool:
        return self.context.chief

    @property
    def manifest(self) -> dict:
        return self.context.run_dir.manifest

    def prepare(self) -> None:
        """Before any work (with the run directory locked): removes what killed writers left
        and checks the recorded settings."""
        self.context.run_dir.prepare()

    def stages(self) -> list[Stage]:
        """Every stage of the run, in order."""
        return plan(self.config)

    def run_stage(self, stage: Stage | str) -> dict:
        """Runs `stage` unless the manifest says it is done; records its settings before and
        its result, time and data counts after."""
        name = stage if isinstance(stage, str) else stage.name
        stage = parse_stage(name)
        if stage not in self.stages():
            raise RunError(f"{name} is not a stage of this run (its stages: "
                           f"{', '.join(s.name for s in self.stages())}).")
        run_dir, stats = self.context.run_dir, self.context.data_stats
        if run_dir.done(stage):
            console.log.info("Stage %s: already complete, skipped.", stage.name)
            return run_dir.result(stage)
        console.log.info("Stage %s: started.", stage.name)
        run_dir.record(stage, None)
        stats.reset()
        start = time.time()
        result = dict(STAGE_FUNCTIONS[stage.kind](self.context, stage.iteration))
        result["seconds"] = round(time.time() - start, 1)
        if stats.result()["files"]:  # the stage read TFRecords through a pipeline
            result.update(stats.summary())
        _log_data(stage.name, result)
        run_dir.record(stage, result)
        console.log.info("Stage %s: done in %s: %s", stage.name, _duration(result["seconds"]),
                         ResultRow.of_stage(stage.name, result).text)
        return result

    def run_all(self) -> dict:
        """Runs (or skips, when done) every stage in order; returns the manifest."""
        for stage in self.stages():
            self.run_stage(stage)
        return self.manifest


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _log_data(stage: str, result: dict) -> None:
    """The stage's data line: skipped images and damaged files (WARNING when any)."""
    skipped, damaged = result.get("data_skipped", 0), result.get("data_damaged_files", {})
    if skipped or damaged:
        log.warning("Stage %s skipped %d undecodable images; damaged files (bytes unread; "
                    "their records after the damage are lost): %s", stage, skipped,
                    ", ".join(f"{name} ({unread})" for name, unread in damaged.items())
                    or "none")
