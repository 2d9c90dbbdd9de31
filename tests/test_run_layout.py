"""Stage names and run-directory folders (noisy_student.run.layout): one spelling, read back."""

from types import SimpleNamespace

import pytest

from noisy_student.run import layout
from noisy_student.run.layout import EVAL, EXPORT, LABEL, TRAIN, Stage


def _config(students: int, on_the_fly: bool = False) -> SimpleNamespace:
    return SimpleNamespace(student_models=["b0"] * students, on_the_fly_teacher=on_the_fly)


def test_plan_lists_the_loop_order_and_every_name_reads_back():
    stages = layout.plan(_config(2))
    assert [s.name for s in stages] == [
        "teacher", "teacher/eval", "iter1/label", "iter1/filter", "iter1/student", "iter1/eval",
        "iter2/label", "iter2/filter", "iter2/student", "iter2/eval", "export"]
    assert [layout.parse_stage(s.name) for s in stages] == stages
    names = [s.name for s in stages]
    assert sorted(reversed(names), key=layout.stage_order) == names


def test_on_the_fly_teacher_plan_has_no_label_or_filter_stage():
    names = [s.name for s in layout.plan(_config(1, on_the_fly=True))]
    assert names == ["teacher", "teacher/eval", "iter1/student", "iter1/eval", "export"]


@pytest.mark.parametrize("name", ["iter0/eval", "iter1/train", "iter01/eval", "teacher/label",
                                  "iter1", "student", "iter1/student/eval"])
def test_names_no_loop_writes_are_not_stages(name):
    assert layout.parse_stage(name) is None


def test_every_single_stage_mode_names_a_planned_stage():
    from noisy_student.cli.flags import MODES

    stages = layout.plan(_config(2))
    single = [mode for mode in MODES if mode in layout.MODE_KINDS]
    assert set(single) == set(MODES) - {"loop", "eval_corrupted"}
    for mode in single:
        assert layout.stage_for_mode(mode, 2) in stages
    assert layout.stage_for_mode("teacher", 2) == Stage(TRAIN, 0)
    assert layout.stage_for_mode("student", 2).name == "iter2/student"
    assert layout.stage_for_mode("eval", 0).name == "teacher/eval"
    assert layout.stage_for_mode("export", 1) == Stage(EXPORT)


def test_stage_names_and_folders_agree():
    assert layout.stage_name(TRAIN, 0) == layout.model_dir(0) == "teacher"
    assert layout.stage_name(TRAIN, 3) == layout.model_dir(3).replace("\\", "/")
    assert layout.stage_output(Stage(LABEL, 2)) == layout.labels_dir(2)
    assert layout.stage_output(Stage(EVAL, 2)) is None
    with pytest.raises(ValueError, match="no label stage"):
        layout.stage_name(LABEL, 0)


def test_iterations_stop_at_the_first_gap():
    names = ["teacher", "teacher/eval", "iter1/eval", "iter3/eval", "export"]
    assert layout.iterations(names) == [0, 1]
    assert layout.iterations(["iter1/student"]) == [1]


@pytest.mark.parametrize("name, value, first_stage", [
    ("teacher_flip_average", True, Stage(LABEL, 1)),
    ("student_base_learning_rate", 0.032, Stage(TRAIN, 1)),
    ("pseudo_label_topk", 10, Stage(LABEL, 1)),
])
def test_later_settings_are_recorded_only_when_set(tmp_path, name, value, first_stage):
    """Run directories recorded before a setting existed still resume (at its default it is
    left out of every stage's record); set, it is part of the record from the first stage it
    affects on (so a rerun with another value stops there), never of the earlier ones."""
    from noisy_student.config import RunConfig
    from noisy_student.run.directory import stage_settings

    def settings(stage, **flags):
        config = RunConfig(run_dir=str(tmp_path), num_classes=10, student_models=["b0"],
                           unlabel_data="u-*", **flags)
        return stage_settings(config, stage)

    stages = layout.plan(_config(1))
    first = stages.index(first_stage)
    for stage in stages:
        assert name not in settings(stage)
        if stages.index(stage) < first:
            assert settings(stage, **{name: value}) == settings(stage), stage.name
        else:
            assert settings(stage, **{name: value})[name] == value, stage.name


def test_pseudo_label_storage_auto_is_recorded_as_what_it_chose(tmp_path):
    """'auto' resolves by class count: copy records in float16 (the setting run directories
    recorded before 'auto' existed, so they resume) below 100 classes, references from 100."""
    from noisy_student.config import RunConfig
    from noisy_student.run.directory import stage_settings

    def recorded(**flags):
        config = RunConfig(run_dir=str(tmp_path), student_models=["b0"], unlabel_data="u-*",
                           **flags)
        return stage_settings(config, Stage(LABEL, 1))["pseudo_label_storage"]

    assert recorded(num_classes=10) == recorded(num_classes=10, pseudo_label_storage="copy")
    assert recorded(num_classes=10) == "float16"
    assert recorded(num_classes=1000) == "reference"
    assert recorded(num_classes=1000, pseudo_label_storage="topk:5") == "topk:5"


def test_teacher_randaugment_can_differ_from_the_students(tmp_path):
    """--teacher_randaug_num_layers/_magnitude give the teacher its own RandAugment (else it
    takes the students'); the teacher stage records only the values it trained with, so the
    students' RandAugment can change without redoing the teacher."""
    import dataclasses

    from noisy_student.config import RunConfig
    from noisy_student.run.directory import stage_settings

    def config(**flags):
        return RunConfig(run_dir=str(tmp_path), num_classes=10, student_models=["b0"],
                         unlabel_data="u-*", randaug_num_layers=0, randaug_magnitude=5.0,
                         **flags)

    def randaug_settings(run_config, teacher):
        return tuple(value for _, value in run_config.randaug_settings(teacher).values())

    tied = config(teacher_randaug=True)
    own = config(teacher_randaug=True, teacher_randaug_num_layers=2)
    assert randaug_settings(tied, teacher=True) == (0, 5.0)
    assert randaug_settings(own, teacher=True) == (2, 5.0)
    assert randaug_settings(own, teacher=False) == (0, 5.0)
    assert randaug_settings(config(teacher_randaug_num_layers=2), teacher=True) == (0, 5.0)
    both = config(teacher_randaug=True, teacher_randaug_num_layers=3,
                  teacher_randaug_magnitude=9.0)
    assert randaug_settings(both, teacher=True) == (3, 9.0)

    # The training pipelines built for the teacher and for a student.
    from noisy_student.pipeline.stages import training_data_fn

    ctx = SimpleNamespace(config=own, data_stats=None)
    for is_teacher, layers in ((True, 2), (False, 0)):
        options = training_data_fn(ctx, 32, lambda o: o, randaug=True, teacher=is_teacher)(8)
        assert (options.randaug_num_layers, options.randaug_magnitude) == (layers, 5.0)

    teacher = stage_settings(own, Stage(TRAIN, 0))
    assert teacher["teacher_randaug_num_layers"] == 2 and "randaug_num_layers" not in teacher
    assert teacher["randaug_magnitude"] == 5.0  # the teacher's magnitude is the students'
    assert "randaug_num_layers" in stage_settings(tied, Stage(TRAIN, 0))
    students_changed = dataclasses.replace(own, randaug_num_layers=1)
    assert stage_settings(students_changed, Stage(TRAIN, 0)) == teacher
    assert stage_settings(students_changed, Stage(TRAIN, 1))["randaug_num_layers"] == 1
