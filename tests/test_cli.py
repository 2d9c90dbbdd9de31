"""The noisy-student CLI: every flag is checked before any work, with one clear message."""

import os
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

from noisy_student import assets
from noisy_student.cli import flags as cli_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = assets.SAMPLE_DIR
GOOD = {
    "run_dir": "unused",
    "label_data": os.path.join(SAMPLE, "train-*"),
    "unlabel_data": os.path.join(SAMPLE, "unlabeled-*"),
    "eval_data": os.path.join(SAMPLE, "validation-*"),
    "num_classes": 10,
}


@pytest.fixture(autouse=True)
def parsed_flags():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver(**GOOD):
        yield


def _error(**overrides) -> str:
    with flagsaver.flagsaver(**overrides):
        with pytest.raises(cli_flags.FlagError) as info:
            cli_flags.validate()
    return str(info.value)


def test_good_flags_pass():
    cli_flags.validate()


def test_missing_data_directory_is_named():
    message = _error(label_data="/nonexistent/dir/train-*")
    assert "--label_data" in message and "/nonexistent/dir" in message


def test_empty_pattern_is_named(tmp_path):
    message = _error(unlabel_data=str(tmp_path / "nothing-*"))
    assert "--unlabel_data" in message and "matches no files" in message


def test_unknown_model_lists_valid_names():
    message = _error(student_models=["b0", "efficientnet-b42"])
    assert "efficientnet-b42" in message and "efficientnet-l2" in message


@pytest.mark.parametrize("ratio", [0.0, -1.0])
def test_ratio_must_be_positive(ratio):
    assert "--unlabel_ratio must be > 0" in _error(unlabel_ratio=ratio)


def test_teacher_checkpoint_must_exist():
    assert "--teacher_checkpoint" in _error(teacher_checkpoint="/nonexistent/model.keras")


def test_iteration_must_exist():
    assert "--iteration=3" in _error(mode="student", iteration=3, student_models=["b0", "b1"])


def test_bad_temperature():
    assert "--teacher_softmax_temp" in _error(teacher_softmax_temp=0.0)


def test_eval_mode_needs_eval_data():
    assert "--eval_data is required" in _error(mode="eval", eval_data=None)


def test_cli_exits_nonzero_with_one_message_and_does_no_work(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "noisy_student.cli.main", f"--run_dir={run_dir}",
         f"--label_data={tmp_path}/missing/train-*", f"--unlabel_data={GOOD['unlabel_data']}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [f"noisy-student: error: --label_data: directory '{tmp_path}/missing' "
                      "does not exist."]
    assert not run_dir.exists()


def test_unknown_flag_is_rejected():
    result = subprocess.run(
        [sys.executable, "-m", "noisy_student.cli.main", "--run_dir=x", "--unlabel_ratoi=3"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode != 0 and "unlabel_ratoi" in result.stderr


def test_mode_train_is_a_one_line_error():
    """--mode=train, renamed --mode=teacher, is refused without a deprecation period (0.x)."""
    result = subprocess.run(
        [sys.executable, "-m", "noisy_student.cli.main", "--run_dir=x", "--mode=train"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("noisy-student: error: --mode=train")
    assert "teacher" in errors[0]


def test_every_run_setting_and_its_flag_agree():
    """One home per setting: RunConfig's name, default, help, choices and range are the flag's
    (flags.run_config fills RunConfig from flags of the same names); every other flag of the
    command only chooses what it does."""
    import dataclasses

    from noisy_student.config import RunConfig

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for name, field in fields.items():
        flag = flags.FLAGS[name]
        default = (field.default_factory() if field.default_factory is not dataclasses.MISSING
                   else None if field.default is dataclasses.MISSING else field.default)
        choices = field.metadata["choices"]
        shown = f"<{'|'.join(choices)}>: " if choices else ""  # absl lists an enum's values
        assert (flag.default, flag.help) == (default, shown + field.metadata["help"]), name
        assert getattr(flag.parser, "enum_values", None) == (list(choices) if choices else None)
        assert cli_flags.RANGES.get(name) == field.metadata["bounds"], name
    own = {name for name in flags.FLAGS
           if flags.FLAGS.find_module_defining_flag(name) == cli_flags.__name__}
    assert own - set(fields) == {"mode", "iteration", "traceback", "verbose", "eval_benchmark",
                                 "eval_benchmark_data", "baseline_errors"}


def test_choice_lists_are_the_implementations():
    from noisy_student.training import optimizer, precision, schedules, strategy

    for name, implemented in (("optimizer", optimizer.OPTIMIZERS),
                              ("lr_schedule", schedules.SCHEDULES),
                              ("student_lr_schedule", schedules.SCHEDULES),
                              ("precision", precision.PRECISIONS),
                              ("strategy", strategy.STRATEGIES)):
        assert flags.FLAGS[name].parser.enum_values == list(implemented), name


def test_every_training_setting_reaches_the_trainer(tmp_path):
    """stages.train_config copies each run setting that TrainConfig has (same name, or the one
    rename in TRAIN_SETTING_NAMES): a non-default value of each arrives unchanged."""
    import dataclasses
    from types import SimpleNamespace

    from noisy_student.config import RunConfig
    from noisy_student.pipeline.stages import TRAIN_SETTING_NAMES, train_config
    from noisy_student.training import TrainConfig

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    run_fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    assert set(TRAIN_SETTING_NAMES) <= train_fields
    assert set(TRAIN_SETTING_NAMES.values()) <= set(run_fields)
    changed = {"train_batch_size": 64, "lr_warmup_epochs": 1.5, "final_base_lr": 1e-3,
               "optimizer": "adamw", "base_learning_rate": 0.05, "lr_schedule": "cosine",
               "lr_decay_epochs": 3.0, "weight_decay": 2e-5, "label_smoothing": 0.2,
               "moving_average_decay": 0.99, "allow_smaller_student": True,
               "precision": "mixed_bfloat16", "steps_per_loop": 3, "checkpoint_every": 7,
               "summary_every": 9, "eval_batch_size": 11, "quiet": True, "train_epochs": 4.0,
               "teacher_flip_average": True}
    shared = {TRAIN_SETTING_NAMES.get(name, name) for name in train_fields} & set(run_fields)
    assert shared - {"unlabel_ratio"} == set(changed)  # unlabel_ratio: students only
    config = RunConfig(run_dir=str(tmp_path), **changed)
    teacher = train_config(SimpleNamespace(config=config, num_train_images=640), student=False)
    for name in train_fields:
        setting = TRAIN_SETTING_NAMES.get(name, name)
        if setting in changed:
            assert getattr(teacher, name) == changed[setting], name


def test_console_script_help_lists_the_flags():
    script = os.path.join(os.path.dirname(sys.executable), "noisy-student")
    if not os.path.exists(script):
        pytest.skip("package not installed with its console script")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    # absl prints the help to stdout and exits with status 1.
    for flag in ("--mode", "--unlabel_ratio", "--student_models", "--strategy"):
        assert flag in result.stdout


def test_schedule_and_student_length_flags_are_checked_up_front():
    assert "--student_epochs must be > 0" in _error(student_epochs=-1.0)
    assert "--student_train_ratio must be > 0" in _error(student_train_ratio=0.0)
    assert "not both" in _error(student_epochs=10.0, student_train_ratio=2.0)
    assert "--final_base_lr" in _error(base_learning_rate=0.016, final_base_lr=0.05)
    assert "staircase" in _error(final_base_lr=0.0, lr_schedule="exponential")
    assert "--student_final_base_lr=0 cannot" in _error(
        student_final_base_lr=0.0, lr_schedule="exponential"
    )
    # A student's final rate is checked against the students' own peak rate when given.
    assert "[0, --student_base_learning_rate=0.01)" in _error(
        student_base_learning_rate=0.01, student_final_base_lr=0.012, lr_schedule="cosine"
    )
    # ... and the run's final rate, which students share by default, against it too; the
    # message names the flags that hold the two values.
    assert "--final_base_lr=0.02 must be in [0, --student_base_learning_rate=0.01)" in _error(
        base_learning_rate=0.05, final_base_lr=0.02, student_base_learning_rate=0.01,
        lr_schedule="cosine"
    )
    with flagsaver.flagsaver(student_base_learning_rate=0.05, student_final_base_lr=0.02,
                             lr_schedule="cosine"):
        cli_flags.validate()
    with flagsaver.flagsaver(final_base_lr=0.0, lr_schedule="cosine", student_train_ratio=2.0):
        cli_flags.validate()


def test_robustness_modes_need_their_data():
    assert "--eval_benchmark_data" in _error(mode="eval_corrupted", iteration=1)
    assert "--eval_benchmark=imagenet_c needs" in _error(
        mode="eval", eval_benchmark="imagenet_c", iteration=0
    )


def test_student_train_ratio_scales_steps_and_staircase_period(tmp_path):
    import dataclasses

    from noisy_student.pipeline.loop import Run, RunConfig
    from noisy_student.pipeline.stages import train_config

    config = RunConfig(
        run_dir=str(tmp_path), num_train_images=1000, train_batch_size=100, train_epochs=30,
        lr_decay_epochs=2.0, student_train_ratio=2.5, final_base_lr=None,
    )
    run = Run(config).context
    teacher, student = train_config(run, student=False), train_config(run, student=True)
    assert (teacher.total_steps, student.total_steps) == (300, 750)
    assert (teacher.lr_decay_epochs, student.lr_decay_epochs) == (2.0, 5.0)
    assert teacher.lr_schedule == student.lr_schedule == "exponential"
    assert teacher.base_learning_rate == student.base_learning_rate == 0.016
    own = Run(dataclasses.replace(
        config, student_lr_schedule="cosine", student_final_base_lr=1e-4, final_base_lr=2e-3,
        student_base_learning_rate=0.032,
    )).context
    teacher, student = train_config(own, student=False), train_config(own, student=True)
    assert (teacher.lr_schedule, teacher.final_base_learning_rate) == ("exponential", 2e-3)
    assert (student.lr_schedule, student.final_base_learning_rate) == ("cosine", 1e-4)
    assert (teacher.base_learning_rate, student.base_learning_rate) == (0.016, 0.032)


def test_svhn_flagfile_gives_the_reference_schedule(tmp_path):
    """configs/svhn.cfg: 109,474 steps at batch 128 and a staircase period of 1.3717 epochs
    derived from final_base_lr=2e-4 (reference main.py; see test_recipe for the formula)."""
    from noisy_student.cli.flags import run_config
    from noisy_student.pipeline.loop import Run, RunConfig
    from noisy_student.pipeline.stages import train_config
    from noisy_student.training.schedules import learning_rate_schedule

    flagfile = assets.config_path("svhn")
    saved = flags.FLAGS.flag_values_dict()
    try:
        flags.FLAGS(["test", f"--flagfile={flagfile}", f"--run_dir={tmp_path}"])
        config = run_config()
    finally:
        for name, value in saved.items():
            flags.FLAGS[name].value = value
    assert isinstance(config, RunConfig)
    run = Run(config).context
    for student in (False, True):
        train = train_config(run, student=student)
        assert train.total_steps == 109474
        schedule = learning_rate_schedule(train)
        assert schedule.decay_epochs == pytest.approx(1.3717, abs=1e-4)
        assert schedule.peak_learning_rate == pytest.approx(0.008)


def test_comma_separated_patterns_are_checked_one_by_one(tmp_path):
    both = f"{os.path.join(SAMPLE, 'train-00000-*')},{os.path.join(SAMPLE, 'train-00001-*')}"
    with flagsaver.flagsaver(label_data=both, unlabel_data=both):
        cli_flags.validate()
    missing = f"{both},{tmp_path}/none-*"
    assert f"pattern '{tmp_path}/none-*' matches no files" in _error(label_data=missing)
    assert "empty entry" in _error(unlabel_data=f"{both},")


@pytest.mark.parametrize("name, value, expected", [
    ("student_epochs", -1.0, "--student_epochs must be > 0, got -1.0"),
    ("lr_warmup_epochs", -0.5, "--lr_warmup_epochs must be >= 0"),
    ("lr_decay_epochs", 0.0, "--lr_decay_epochs must be > 0"),
    ("num_train_images", 0, "--num_train_images must be > 0"),
    ("num_image_per_class", -3, "--num_image_per_class must be > 0"),
    ("label_smoothing", 1.0, "--label_smoothing must be in [0, 1)"),
    ("moving_average_decay", 1.5, "--moving_average_decay must be in [0, 1)"),
    ("dropout_rate", -0.1, "--dropout_rate must be in [0, 1)"),
    ("stochastic_depth_rate", 1.0, "--stochastic_depth_rate must be in [0, 1)"),
    ("randaug_num_layers", -1, "--randaug_num_layers must be >= 0"),
    ("teacher_randaug_num_layers", -1, "--teacher_randaug_num_layers must be >= 0"),
    ("width_coefficient", 0.0, "--width_coefficient must be > 0"),
    ("weight_decay", -1e-5, "--weight_decay must be >= 0"),
    ("min_threshold", 1.5, "--min_threshold must be in [0, 1]"),
    ("min_threshold", 0.305, "0.01 grid"),
    ("wait_timeout", 0.0, "--wait_timeout must be > 0"),
    ("label_offset", -1, "--label_offset must be >= 0"),
    ("seed", -1, "--seed must be >= 0"),
])
def test_every_numeric_flag_is_range_checked(name, value, expected):
    assert expected in _error(**{name: value})


def test_teachers_own_randaugment_needs_teacher_randaug():
    assert ("--teacher_randaug_num_layers needs --teacher_randaug" in
            _error(teacher_randaug_num_layers=2))
    assert ("--teacher_randaug_num_layers and --teacher_randaug_magnitude need" in
            _error(teacher_randaug_num_layers=2, teacher_randaug_magnitude=5.0))


def test_worker_flags_come_together_and_in_range():
    assert "both --worker_index and --num_workers" in _error(worker_index=1)
    assert "--worker_index=2 must be below --num_workers=2" in _error(worker_index=2, num_workers=2)


def test_every_range_names_a_flag():
    assert set(cli_flags.RANGES) <= set(flags.FLAGS)


def test_cifar10_benchmark_baseline_commands_pass_validation(tmp_path, monkeypatch):
    """benchmarks/self_training_cifar10.py --baseline: both commands it runs (train the
    baseline, then evaluate it) must get past flag validation with the shipped flagfile."""
    from benchmark_modules import load_benchmark

    bench = load_benchmark("self_training_cifar10")
    commands = []
    monkeypatch.setattr(bench, "run_loop", lambda flagfile, args: commands.append(args) or 0)
    flagfile = assets.config_path("cifar10_4000")
    data = [f"--{name}={GOOD[name]}" for name in ("label_data", "unlabel_data", "eval_data")]
    given = f"--teacher_checkpoint={tmp_path / 'teacher.keras'}"  # the loop's, not the baseline's
    assert bench.run_baseline(flagfile, [*data, given], str(tmp_path)) == 0
    assert not [arg for args in commands for arg in args if arg.startswith("--teacher_checkpoint")]
    assert [arg for args in commands for arg in args if arg.startswith("--mode=")] == [
        "--mode=teacher", "--mode=eval"]
    saved = flags.FLAGS.flag_values_dict()
    try:
        flags.FLAGS(["test", f"--flagfile={flagfile}"])
        teacher_and_student = flags.FLAGS.train_epochs + flags.FLAGS.student_epochs
        for args in commands:
            flags.FLAGS(["test", f"--flagfile={flagfile}", *args])
            cli_flags.validate()
            assert flags.FLAGS.train_epochs == pytest.approx(teacher_and_student)
    finally:
        for name, value in saved.items():
            flags.FLAGS[name].value = value


def test_student_init_teacher_needs_one_architecture():
    message = _error(student_init="teacher", teacher_model="b0", student_models=["b0", "b1"])
    assert "--student_init=teacher" in message and "efficientnet-b1" in message
    with flagsaver.flagsaver(student_init="teacher", teacher_model="b0",
                             student_models=["efficientnet-b0", "b0"]):
        cli_flags.validate()


def test_student_init_grow_needs_students_at_least_as_large():
    message = _error(student_init="grow", teacher_model="b1", student_models=["b0"])
    assert "--student_init=grow" in message and "efficientnet-b1 (width 1, depth 1.1)" in message
    message = _error(student_init="grow", width_coefficient=0.5, depth_coefficient=0.5,
                     student_width_coefficient=0.4)
    assert "width 0.4" in message
    with flagsaver.flagsaver(student_init="grow", width_coefficient=0.5, depth_coefficient=0.5,
                             student_width_coefficient=0.55, student_depth_coefficient=1.0):
        cli_flags.validate()
    message = _error(student_init="teacher", width_coefficient=0.5,
                     student_width_coefficient=0.55)
    assert "--student_init=teacher" in message and "width 0.55" in message


def test_deterministic_needs_a_seed():
    assert "--deterministic needs --seed" in _error(deterministic=True)
    with flagsaver.flagsaver(deterministic=True, seed=3):
        cli_flags.validate()
