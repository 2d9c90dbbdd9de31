"""A run directory's state: its manifest, the settings each stage depends on, and the checks and
clean-up before a command works there.

`manifest.json` records each finished stage with its results and the settings each started stage
depends on, and the benchmark results of the run's models (`record_evaluation`); rerunning the same
command skips finished stages and resumes the first unfinished one. `RunDir.prepare` (before any
work, with the directory locked) removes the temp files of killed writers and stops with a RunError
when the settings differ from the recorded ones (or, with redo_changed_stages, deletes and redoes
the affected stages). Names and folders come from noisy_student.run.layout."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from efficientnet_tf.architecture import canonical_name
from noisy_student.atomic_io import (
    read_json,
    remove_stale_temps,
    write_json_atomic,
)
from noisy_student.data import labels_file
from noisy_student.run.layout import (
    EVAL,
    EVALUATIONS,
    EXPORT,
    FILTER,
    LABEL,
    MANIFEST,
    TRAIN,
    Stage,
    plan,
    stage_name,
    stage_output,
)
from noisy_student.run.lock import directory_lock

log = logging.getLogger(__name__)

# The settings each kind of stage adds to what it depends on (a stage depends on its own and on
# those of every stage before it in the model chain). A finished stage records them; a rerun
# with other values stops (or, with --redo_changed_stages, redoes it). Settings not listed
# (quiet, summary_every, checkpoint_every, steps_per_loop, eval_batch_size, strategy, workers,
# wait_timeout) do not change results and never block.
TEACHER_SETTINGS = (
    "label_data", "label_offset", "num_classes", "num_train_images", "teacher_model",
    "teacher_checkpoint", "image_size", "small_images", "width_coefficient", "depth_coefficient",
    "train_batch_size", "train_epochs", "optimizer", "base_learning_rate", "final_base_lr",
    "lr_schedule", "lr_warmup_epochs", "lr_decay_epochs", "weight_decay", "label_smoothing",
    "moving_average_decay", "dropout_rate", "stochastic_depth_rate", "precision",
    "teacher_randaug", "seed",
)
RANDAUG_SETTINGS = ("randaug_num_layers", "randaug_magnitude")
# (settings, step within an iteration: 1 label, 2 filter, 3 student)
ITERATION_SETTINGS = (
    (("unlabel_data", "teacher_softmax_temp", "pseudo_label_storage", "on_the_fly_teacher",
      "teacher_flip_average", "pseudo_label_topk"), 1),
    (("min_threshold", "num_image_per_class", "balance_classes"), 2),
    (("student_epochs", "student_train_ratio", "student_lr_schedule",
      "student_base_learning_rate", "student_final_base_lr",
      "unlabel_ratio", "student_init", "student_width_coefficient", "student_depth_coefficient",
      "grow_noise", *RANDAUG_SETTINGS), 3),
)
# Settings added after run directories were recorded: left out of a stage's record while they
# hold this value, so those directories still resume.
LATER_SETTINGS = {"teacher_flip_average": False, "student_base_learning_rate": None,
                  "pseudo_label_topk": 5, "balance_classes": True,
                  "student_width_coefficient": None, "student_depth_coefficient": None,
                  "grow_noise": 0.01}
STAGE_STEP = {LABEL: 1, FILTER: 2, TRAIN: 3, EVAL: 3, EXPORT: 3}
EVAL_SETTINGS = ("eval_data",)
EXPORT_SETTINGS = ("export_dir",)
_PATH_SETTINGS = ("label_data", "unlabel_data", "eval_data", "teacher_checkpoint", "export_dir")


class RunError(RuntimeError):
    """The run directory's state stops this command (a missing earlier stage, settings that
    differ from the finished stages', another command writing there); the message says what
    to do."""


def _normalized(name: str, value: Any) -> Any:
    """A setting as recorded: data patterns absolute, model names canonical, JSON types."""
    if value is None:
        return None
    if name in _PATH_SETTINGS:
        if not value.startswith("tfds:") and "://" not in value:
            value = ",".join(os.path.abspath(part.strip()) for part in value.split(","))
    elif name == "teacher_model":
        value = canonical_name(value)
    return json.loads(json.dumps(value))


def stage_settings(config, stage: Stage) -> dict:
    """The settings `stage` depends on: its own and those of the stages before it."""
    iteration = len(config.student_models) if stage.kind == EXPORT else stage.iteration
    step = STAGE_STEP[stage.kind]
    names = list(TEACHER_SETTINGS)
    if config.teacher_randaug:  # the settings the teacher's RandAugment took its values from
        names += [name for name, _ in config.randaug_settings(teacher=True).values()]
    for group, group_step in ITERATION_SETTINGS:
        if iteration > 1 or (iteration == 1 and step >= group_step):
            names += [name for name in group if name not in names]
    names += list(EVAL_SETTINGS) if stage.kind == EVAL else []
    names += list(EXPORT_SETTINGS) if stage.kind == EXPORT else []
    settings = {name: _normalized(name, getattr(config, name)) for name in names
                if LATER_SETTINGS.get(name, ...) != getattr(config, name)}
    students = iteration if step == 3 else iteration - 1
    if students > 0:
        settings["student_models"] = [canonical_name(m) for m in config.student_models[:students]]
    return settings


def update_manifest(run_dir: str, change: Callable[[dict], None]) -> dict:
    """Reads ``run_dir``'s manifest from disk, applies ``change`` and writes it back atomically,
    holding a lock on ``run_dir`` so that commands updating it at once (a loop, an evaluation)
    do not overwrite each other's changes; returns it."""
    path = os.path.join(run_dir, MANIFEST)
    with directory_lock(run_dir):
        manifest = read_json(path) or {"stages": {}}
        change(manifest)
        write_json_atomic(path, manifest)
    return manifest


def record_evaluation(run_dir: str, iteration: int, benchmark: str, result: dict) -> None:
    """Records a benchmark's result for the run's model of ``iteration`` (0 = teacher) in the
    manifest, under ``EVALUATIONS``, in place of an earlier result of the same benchmark."""
    update_manifest(run_dir, lambda manifest: manifest.setdefault(EVALUATIONS, {}).setdefault(
        stage_name(EVAL, iteration), {}).update({benchmark: result}))


class RunDir:
    """One run directory: paths in it and its manifest. Only the chief writes the manifest;
    every worker keeps its own copy in memory."""

    def __init__(self, config, chief: bool = True):
        self.config = config
        self.root = config.run_dir
        self.chief = chief
        tf.io.gfile.makedirs(self.root)
        self.manifest_path = self.path(MANIFEST)
        self.manifest = read_json(self.manifest_path) or {"stages": {}}

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # ------------------------------------------------------------------------ manifest
    def done(self, stage: Stage) -> bool:
        return stage.name in self.manifest["stages"]

    def result(self, stage: Stage) -> dict:
        return self.manifest["stages"][stage.name]

    def record(self, stage: Stage, result: dict | None) -> None:
        """Records a stage's settings (when it starts) or its result (when it is done), merged
        into the manifest on disk so that workers writing other stages lose nothing."""
        settings = stage_settings(self.config, stage)

        def change(manifest: dict) -> None:
            manifest.setdefault("settings", {})[stage.name] = settings
            if result is not None:
                manifest["stages"][stage.name] = result

        self._change(change)

    def _change(self, change: Callable[[dict], None]) -> None:
        """Applies ``change`` to the manifest in memory and (the chief) on disk."""
        change(self.manifest)
        if self.chief:
            update_manifest(self.root, change)

    # ---------------------------------------------------------------- integrity checks
    def prepare(self) -> None:
        """Before any work (with the run directory locked): removes what killed writers left
        and checks the recorded settings."""
        remove_stale_temps(self.root)
        self.check_settings()

    def changed_settings(self) -> dict[str, dict[str, tuple]]:
        """{stage: {setting: (recorded, now)}} of the started or finished stages whose recorded
        settings differ from this command's, in stage order."""
        recorded = self.manifest.get("settings", {})
        changed = {}
        for stage in plan(self.config):
            if stage.name not in recorded:
                continue
            now, then = stage_settings(self.config, stage), recorded[stage.name]
            diff = {key: (then.get(key), now.get(key)) for key in sorted({*now, *then})
                    if then.get(key) != now.get(key)}
            if diff:
                changed[stage.name] = diff
        return changed

    def check_settings(self) -> None:
        """Stops (RunError, before any work) when a started or finished stage was made with
        other result-affecting settings; with --redo_changed_stages forgets those stages and
        deletes their outputs instead."""
        changed = self.changed_settings()
        if not changed:
            return
        if self.config.redo_changed_stages:
            self._forget_from(next(iter(changed)), changed)
            return
        flags: dict[str, tuple] = {}
        for diff in changed.values():
            flags.update(diff)
        listing = "; ".join(f"--{name} was {then!r}, now {now!r}"
                            for name, (then, now) in flags.items())
        first = next(iter(changed))
        raise RunError(
            f"{self.root} holds stages made with other settings ({listing}); the first "
            f"affected stage is {first}. Use a new --run_dir, or pass --redo_changed_stages to "
            f"redo {', '.join(changed)} (their outputs are deleted)."
        )

    def _forget_from(self, first: str, changed: dict) -> None:
        """Forgets the changed stages and every unfinished stage after `first` (their partial
        outputs were made with the old settings) and deletes their outputs."""
        stages = plan(self.config)
        start = [stage.name for stage in stages].index(first)
        redo = [stage for stage in stages[start:]
                if stage.name in changed or not self.done(stage)]
        log.warning("Redoing stages %s with the new settings (--redo_changed_stages).",
                    ", ".join(stage.name for stage in redo))

        def forget(manifest: dict) -> None:  # a retrained model's evaluations go too
            for stage in redo:
                manifest["stages"].pop(stage.name, None)
                manifest.get("settings", {}).pop(stage.name, None)
                if stage.kind == TRAIN:
                    manifest.get(EVALUATIONS, {}).pop(stage_name(EVAL, stage.iteration), None)

        for stage in redo:
            output = stage_output(stage)
            if self.chief and output and os.path.exists(self.path(output)):
                log.warning("Deleting %s (output of stage %s).", self.path(output), stage.name)
                shutil.rmtree(self.path(output))
        self._change(forget)

    # ----------------------------------------------------------------------- class names
    def copy_labels_file(self) -> None:
        """Copies the labeled data's ``labels.txt`` into the run directory, so that plots and
        the report name the classes without knowing where the data were."""
        source = labels_file.labels_file_beside(self.config.label_data)
        if source is not None:
            labels_file.copy_labels(source, self.path(labels_file.LABELS_FILE))

    @functools.cached_property
    def class_names(self) -> list[str] | None:
        """Class names from the run's ``labels.txt``, or None (plots then show indices)."""
        return labels_file.class_names_or_none(self.path(labels_file.LABELS_FILE),
                                                self.config.num_classes)
