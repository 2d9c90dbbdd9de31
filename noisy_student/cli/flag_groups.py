"""The flags that several command lines share, each defined here once (name, type, default,
help): which trained model to load (`define_model_flags`), how to build it from checkpoints
(`define_architecture_flags`), how its images are preprocessed (`define_image_flags`), the
labeled data to score it on (`define_data_flags`), class names (`define_labels_flag`), a
corrupted set's baseline (`define_baseline_errors_flag`) and `--traceback`
(`define_traceback_flag`). `call_with_flags` passes the flags to
the function or dataclass (`RunConfig`, `EvalOptions`) whose parameters they name. Imports absl
only.

A group's flags belong to the module that defines the group (absl's key flags of that module),
so a command's ``--help`` lists them with its own.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from absl import app, flags

FLAGS = flags.FLAGS
T = TypeVar("T")


def _define(kind: str, name: str, default: Any, help_text: str,
            flag_values: flags.FlagValues, **bounds: int) -> None:
    """``flags.DEFINE_<kind>``, registered for the first calling module outside this one;
    ``bounds``: lower_bound/upper_bound of a number (absl then refuses, naming the flag)."""
    frame = sys._getframe(1)
    while frame.f_globals["__name__"] == __name__:
        frame = frame.f_back
    getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values,
                                     module_name=frame.f_globals["__name__"], **bounds)


def define_model_flags(flag_values: flags.FlagValues = FLAGS, *, checkpoints: bool = False
                       ) -> None:
    """--model, --iteration and --ema: the trained model a command loads
    (``noisy_student.evaluation.loading.load_model``). ``checkpoints``: the command also
    restores model folders that hold only checkpoints (it defines the architecture flags)."""
    _define("string", "model", None, "A .keras file, a model directory (teacher/, "
            "iterN/student/) or a run directory.", flag_values)
    _define("integer", "iteration", -1, "Run directory: 0 = teacher, N = student N, -1 = last.",
            flag_values, lower_bound=-1)
    define_ema_flag(flag_values, checkpoints=checkpoints)
    if checkpoints:
        define_architecture_flags(flag_values)


def define_ema_flag(flag_values: flags.FlagValues = FLAGS, *, checkpoints: bool = False
                    ) -> None:
    """--ema: the EMA weights of model and run directories (of their checkpoints too, and with
    --noema the raw ones, when the command can build the architecture)."""
    _define("bool", "ema", True, "Evaluate the EMA weights (model.keras or the checkpoint's EMA "
            "shadows); --noema restores the raw weights of the latest checkpoint." if checkpoints
            else "Model/run directories: the EMA weights (model.keras).", flag_values)


def define_architecture_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """--arch and its overrides: the model to build when a folder holds only checkpoints."""
    _define("string", "arch", None, "Model name (e.g. b0) to build when only checkpoints exist.",
            flag_values)
    for name in ("width", "depth"):
        _define("float", f"{name}_coefficient", None, f"With --arch: {name} override used in "
                "training.", flag_values)
    _define("integer", "image_size", None, "Input side; default the model's input size.",
            flag_values, lower_bound=1)


def define_image_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """--small_images and --label_offset: how images are preprocessed and labels read."""
    _define("bool", "small_images", False, "32x32-style model and preprocessing (CIFAR/SVHN).",
            flag_values)
    _define("integer", "label_offset", 1, "Subtracted from TFRecord labels (ImageNet layout: "
            "1). Folders and TFDS are always 0-based.", flag_values)


def define_data_flags(data_help: str, flag_values: flags.FlagValues = FLAGS, *,
                      num_classes: int | None = 1000, batch_size: int = 64) -> None:
    """--data (``data_help`` says what the command does with it), --num_classes (None: the
    model's outputs), --batch_size and the image flags."""
    _define("string", "data", None, data_help, flag_values)
    _define("integer", "num_classes", num_classes, "Classes of the model and of its labeled data"
            + (" (default: the model's outputs)." if num_classes is None else "."), flag_values,
            lower_bound=1)
    _define("integer", "batch_size", batch_size, "Evaluation batch size.", flag_values,
            lower_bound=1)
    define_image_flags(flag_values)


def define_labels_flag(default_help: str, flag_values: flags.FlagValues = FLAGS) -> None:
    """--labels: a class names file; ``default_help`` says what the command uses without it."""
    _define("string", "labels", None, "Class names file (labels.txt: '<label> <name>' or one "
            f"name per line); default: {default_help}", flag_values)


def define_baseline_errors_flag(what: str, flag_values: flags.FlagValues = FLAGS) -> None:
    """--baseline_errors: the errors that normalize the mCE of a corrupted set (``what``: the
    mode or benchmark that reads it)."""
    _define("string", "baseline_errors", None, f"{what}: JSON of a baseline model's errors per "
            "corruption ({'errors': {name: error or [5 errors]}, 'clean_error'}), which "
            "normalizes mCE.", flag_values)


def define_traceback_flag(flag_values: flags.FlagValues = FLAGS) -> None:
    """--traceback: an expected failure shows its Python stack instead of one line and exit
    status 2 (`runner.run_or_exit`)."""
    from noisy_student.cli.runner import TRACEBACK_HELP

    _define("bool", "traceback", False, TRACEBACK_HELP, flag_values)


def severities_flag(values: list[str] | None) -> list[int] | None:
    """--severities as sorted integers 1-5 (None when not given); an app.UsageError naming the
    flag otherwise."""
    if not values:
        return None
    if not all(v.strip().isdigit() and 1 <= int(v) <= 5 for v in values):
        raise app.UsageError(f"--severities must be integers from 1 to 5, got {','.join(values)}")
    return sorted({int(v) for v in values})


def names_flag(flag: str, values: list[str] | None, known: Sequence[str]) -> list[str] | None:
    """A list flag (e.g. --corruptions) checked against ``known`` (None when not given); an
    app.UsageError naming the flag, the unknown names and the choices otherwise."""
    if not values:
        return None
    unknown = [v for v in values if v not in known]
    if unknown:
        raise app.UsageError(f"{flag}: unknown {','.join(unknown)}; choose from "
                             f"{','.join(known)}")
    return list(values)


def call_with_flags(function: Callable[..., T], flag_values: flags.FlagValues = FLAGS,
                    **values) -> T:
    """``function`` (a dataclass: its constructor) called with the flags named like its
    parameters; ``values`` are given instead of flags, and parameters without either keep
    their defaults."""
    named = {name: flag_values[name].value for name in inspect.signature(function).parameters
             if name in flag_values and name not in values}
    return function(**named, **values)
