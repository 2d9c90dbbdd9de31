"""Command-line flags of `noisy-student` and their validation (all checked before any work).

The flags of the run's settings are generated from `noisy_student.config.RunConfig` (name,
default, help, choices, range); this module adds the flags that only choose what the command
does (--mode, --iteration, --traceback, --verbose, --eval_benchmark...). See configs/ for flagfiles.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import types
import typing

from absl import flags

from noisy_student.cli.flag_groups import call_with_flags, define_baseline_errors_flag
from noisy_student.cli.runner import TRACEBACK_HELP, VERBOSE_HELP
from noisy_student.config import PRECISIONS, STRATEGIES, RunConfig
from noisy_student.run.layout import MODE_KINDS

MODES = ("loop", *MODE_KINDS, "eval_corrupted")
EVAL_BENCHMARKS = ("clean", "imagenet_a", "imagenet_r", "imagenet_c", "imagenet_p")
__all__ = ["EVAL_BENCHMARKS", "FLAGS", "MODES", "PRECISIONS", "RANGES", "STRATEGIES", "FlagError",
           "needed_data", "validate"]

FLAGS = flags.FLAGS


def _define_setting(field: dataclasses.Field, kind: type) -> None:
    """The flag of one RunConfig field: same name, default, help and choices."""
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = None if field.default is dataclasses.MISSING else field.default
    meta = field.metadata
    if meta["choices"]:
        flags.DEFINE_enum(field.name, default, meta["choices"], meta["help"])
    elif kind is bool:
        flags.DEFINE_bool(field.name, default, meta["help"])
    elif kind is int:
        flags.DEFINE_integer(field.name, default, meta["help"])
    elif kind is float:
        flags.DEFINE_float(field.name, default, meta["help"])
    elif kind is str:
        flags.DEFINE_string(field.name, default, meta["help"])
    elif kind == list[str]:
        flags.DEFINE_list(field.name, default, meta["help"])
    else:
        raise TypeError(f"RunConfig.{field.name}: no flag type for {kind}")


def _setting_type(annotation) -> type:
    """`int` of ``int | None``; other annotations as they are."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return args[0]
    return annotation


def define_setting_flags() -> None:
    """Defines one flag per RunConfig field (once)."""
    hints = typing.get_type_hints(RunConfig)
    for field in dataclasses.fields(RunConfig):
        if field.name not in FLAGS:
            _define_setting(field, _setting_type(hints[field.name]))


define_setting_flags()

# What to run (not a setting of the run).
flags.DEFINE_enum(
    "mode",
    "loop",
    MODES,
    "Stage to run; 'loop' runs every stage in order and resumes at the first incomplete one; "
    "'teacher' trains the teacher.",
)
flags.DEFINE_integer(
    "iteration",
    1,
    "Iteration that --mode=label|filter|student|eval works on (eval: 0 is the teacher).",
)
flags.DEFINE_bool("traceback", False, TRACEBACK_HELP)
flags.DEFINE_bool("verbose", False, VERBOSE_HELP)

# Evaluation (--mode=eval / eval_corrupted; python -m noisy_student.cli.evaluate has more).
flags.DEFINE_enum(
    "eval_benchmark",
    "clean",
    EVAL_BENCHMARKS,
    "--mode=eval benchmark: 'clean' scores --eval_data and records it in the manifest; the "
    "others read --eval_benchmark_data (released folder layout or tfds:NAME).",
)
flags.DEFINE_string(
    "eval_benchmark_data",
    None,
    "Data of --eval_benchmark, or the output folder of noisy-student-make-corrupted for "
    "--mode=eval_corrupted.",
)
define_baseline_errors_flag("--mode=eval_corrupted")


class FlagError(ValueError):
    """A flag value that cannot work; the message says which flag and what to do."""


# Allowed ranges of numeric flags (from RunConfig): (low, low inclusive, high, high inclusive);
# None = open. A flag left unset (None) is not checked.
RANGES = {field.name: field.metadata["bounds"] for field in dataclasses.fields(RunConfig)
          if field.metadata["bounds"] is not None}


def run_config() -> RunConfig:
    """RunConfig filled from the flags of the same names."""
    return call_with_flags(RunConfig)


def _range_text(low, low_inclusive, high, high_inclusive) -> str:
    if high is None:
        return f"must be {'>=' if low_inclusive else '>'} {low}"
    opening, closing = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
    return f"must be in {opening}{low}, {high}{closing}"


def _check_ranges() -> None:
    """Every numeric flag of RANGES that is set lies in its range."""
    for name, (low, low_inclusive, high, high_inclusive) in RANGES.items():
        value = FLAGS[name].value
        if value is None:
            continue
        above = value >= low if low_inclusive else value > low
        below = high is None or (value <= high if high_inclusive else value < high)
        if not (above and below):
            bounds = _range_text(low, low_inclusive, high, high_inclusive)
            raise FlagError(f"--{name} {bounds}, got {value}.")


def _check_pattern(name: str, patterns: str | None, required: bool) -> None:
    """Each comma-separated pattern of --name must have an existing directory and match files."""
    if patterns is None:
        if required:
            raise FlagError(f"--{name} is required for --mode={FLAGS.mode}.")
        return
    if patterns.startswith("tfds:"):
        return
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            raise FlagError(f"--{name}={patterns!r} has an empty entry between commas.")
        directory = os.path.dirname(pattern) or "."
        if not os.path.isdir(directory):
            raise FlagError(f"--{name}: directory {directory!r} does not exist.")
        if not glob.glob(pattern):
            raise FlagError(f"--{name}: pattern {pattern!r} matches no files.")


def needed_data(mode: str, have_teacher: bool) -> dict[str, bool]:
    """Which data flags a mode needs."""
    train = mode in ("loop", "teacher", "student") and not (mode == "teacher" and have_teacher)
    return {
        "label_data": train,
        "unlabel_data": mode in ("loop", "label", "student"),
        "eval_data": mode == "eval" and FLAGS.eval_benchmark == "clean",
    }


def _check_student_init(chain: list[str]) -> None:
    """--student_init=teacher needs every model the same; grow needs each student at least as
    wide and deep as its teacher, with the same block table."""
    if FLAGS.student_init == "scratch":
        return
    from efficientnet_tf.architecture import model_config

    config = run_config()
    sizes = []
    for iteration, name in enumerate(chain):
        preset = {**model_config(name), **config.model_coefficients(iteration)}
        resolution = config.image_size or (32 if config.small_images else
                                           preset["default_resolution"])
        sizes.append((preset["width_coefficient"], preset["depth_coefficient"], resolution))
    described = ", ".join(f"{name} (width {w:g}, depth {d:g})"
                          for name, (w, d, _) in zip(chain, sizes, strict=True))
    if FLAGS.student_init == "teacher" and len(set(sizes)) > 1:
        raise FlagError(
            "--student_init=teacher starts each student from its teacher's weights, so every "
            f"model must be the same; got {described}. Use --student_init=grow (or scratch) "
            "for larger students.")
    if FLAGS.student_init == "grow":
        for before, after in zip(sizes, sizes[1:], strict=False):
            if after[0] < before[0] or after[1] < before[1]:
                raise FlagError(
                    "--student_init=grow needs each student at least as wide and deep as its "
                    f"teacher; got {described}.")


def validate() -> None:
    """Checks every flag before work starts; raises FlagError with one clear message."""
    from efficientnet_tf.architecture import canonical_name

    if not FLAGS.run_dir:
        raise FlagError("--run_dir is required: the run's checkpoints and state live there.")
    try:
        chain = [canonical_name(n) for n in [FLAGS.teacher_model, *FLAGS.student_models]]
    except ValueError as err:
        raise FlagError(str(err)) from err
    if not FLAGS.student_models and FLAGS.mode in ("loop", "student"):
        raise FlagError("--student_models needs at least one model.")
    _check_student_init(chain)
    if FLAGS.mode == "eval_corrupted" and not (FLAGS.eval_benchmark_data and FLAGS.baseline_errors):
        raise FlagError(
            "--mode=eval_corrupted needs --eval_benchmark_data (from noisy-student-make-corrupted) "
            "and --baseline_errors."
        )
    if FLAGS.mode == "eval" and FLAGS.eval_benchmark != "clean" and not FLAGS.eval_benchmark_data:
        raise FlagError(f"--eval_benchmark={FLAGS.eval_benchmark} needs --eval_benchmark_data.")
    lowest = 0 if FLAGS.mode in ("eval", "eval_corrupted") else 1
    if not lowest <= FLAGS.iteration <= len(FLAGS.student_models):
        raise FlagError(
            f"--iteration={FLAGS.iteration} is outside {lowest}..{len(FLAGS.student_models)} "
            "(one iteration per entry of --student_models)."
        )
    if FLAGS.teacher_checkpoint and not os.path.exists(FLAGS.teacher_checkpoint):
        raise FlagError(f"--teacher_checkpoint {FLAGS.teacher_checkpoint!r} does not exist.")
    for flag, required in needed_data(FLAGS.mode, bool(FLAGS.teacher_checkpoint)).items():
        _check_pattern(flag, getattr(FLAGS, flag), required)
    _check_pattern("eval_data", FLAGS.eval_data, False)
    _check_ranges()
    if FLAGS.deterministic and FLAGS.seed is None:
        raise FlagError("--deterministic needs --seed: a run repeats only from a fixed seed.")
    if FLAGS.student_epochs is not None and FLAGS.student_train_ratio is not None:
        raise FlagError("Give --student_epochs or --student_train_ratio, not both.")
    own = [f"--{n}" for n in ("teacher_randaug_num_layers", "teacher_randaug_magnitude")
           if getattr(FLAGS, n) is not None]
    if own and not FLAGS.teacher_randaug:
        raise FlagError(f"{' and '.join(own)} {'need' if len(own) > 1 else 'needs'} "
                        "--teacher_randaug (the teacher trains without RandAugment otherwise).")
    config = run_config()
    for student in (False, True):
        rates = config.learning_rate_settings(student)
        schedule = rates["lr_schedule"][1]
        peak, peak_value = rates["base_learning_rate"]
        final_flag, final = rates["final_base_learning_rate"]
        if final is not None and not 0 <= final < peak_value:
            raise FlagError(f"--{final_flag}={final} must be in [0, --{peak}={peak_value}).")
        if final == 0 and schedule == "exponential":
            raise FlagError(
                f"--{final_flag}=0 cannot be reached by a staircase; use a value > 0."
            )
    if FLAGS.teacher_softmax_temp <= 0 and FLAGS.teacher_softmax_temp != -1:
        raise FlagError("--teacher_softmax_temp must be > 0, or -1 for hard labels.")
    if abs(FLAGS.min_threshold * 100 - round(FLAGS.min_threshold * 100)) > 1e-6:
        raise FlagError(
            f"--min_threshold={FLAGS.min_threshold} must be on the 0.01 grid of the confidence "
            "histogram (e.g. 0.3)."
        )
    if (FLAGS.worker_index is None) != (FLAGS.num_workers is None):
        raise FlagError("Give both --worker_index and --num_workers, or neither (TF_CONFIG).")
    if FLAGS.worker_index is not None and FLAGS.worker_index >= FLAGS.num_workers:
        raise FlagError(
            f"--worker_index={FLAGS.worker_index} must be below --num_workers={FLAGS.num_workers}."
        )
    if FLAGS.strategy == "tpu" and not FLAGS.tpu and "TPU_NAME" not in os.environ:
        raise FlagError("--strategy=tpu needs --tpu=ADDRESS (or TPU_NAME in the environment).")
    if FLAGS.strategy == "multi_worker" and "TF_CONFIG" not in os.environ:
        raise FlagError("--strategy=multi_worker needs TF_CONFIG describing the cluster.")
