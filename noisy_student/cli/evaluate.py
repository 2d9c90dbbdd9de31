"""Evaluate a trained model: accuracy with per-class results, ImageNet-A/R/C/P, corrupted sets.

    python -m noisy_student.cli.evaluate --model=runs/cifar10_4000 \\
        --data='sample_data/cifar10/validation-*' --num_classes=10 --small_images
    python -m noisy_student.cli.evaluate --model=runs/imagenet --benchmark=imagenet_a \\
        --data=imagenet-a/                  # or tfds:imagenet_a@test, or leave out for TFDS
    python -m noisy_student.cli.evaluate --model=model.keras --benchmark=imagenet_c \\
        --data=ImageNet-C/                  # or tfds:imagenet2012_corrupted
    python -m noisy_student.cli.evaluate --model=model.keras --benchmark=imagenet_p \\
        --data=ImageNet-P/
    python -m noisy_student.cli.evaluate --model=runs/cifar --benchmark=corrupted \\
        --data=data/corrupted --baseline_errors=baseline.json --num_classes=10 --small_images

``--model`` is a run directory (the last iteration's model unless ``--iteration``; EMA weights
unless ``--noema``), a model directory, or a ``.keras`` file. Results go to
``<run dir>/eval/`` (or the folder of the model; ``--output_dir`` to choose) as JSON and PNG.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli.runner import TRACEBACK_HELP, run_or_exit  # noqa: E402
from noisy_student.run import layout as run_layout  # noqa: E402

BENCHMARKS = ("clean", "imagenet_a", "imagenet_r", "imagenet_c", "imagenet_p", "corrupted",
              "report")


def define_flags() -> None:
    """Defines this program's flags on absl's global FLAGS. Only the entry point calls it, so
    importing this module (e.g. from main.py, whose flags share some names) defines nothing."""
    flags.DEFINE_string("model", None, "Run directory, model directory or .keras file.")
    flags.DEFINE_enum("benchmark", "clean", BENCHMARKS, "What to evaluate ('report': write "
                      "<run dir>/report.md and report/*.png from the run's results, no "
                      "evaluation).")
    flags.DEFINE_string("data", None, "TFRecord pattern, class-folder tree or tfds:NAME@SPLIT "
                        "(clean); the benchmark's folder tree or tfds spec (imagenet_*; TFDS by "
                        "default for imagenet_a/r/c); noisy-student-make-corrupted output "
                        "(corrupted).")
    flags.DEFINE_integer("iteration", -1, "Run directory: 0 = teacher, N = student N, -1 = last.")
    flags.DEFINE_bool("ema", True, "Evaluate the EMA weights (model.keras or the checkpoint's EMA "
                      "shadows); --noema restores the raw weights of the latest checkpoint.")
    flags.DEFINE_string("arch", None, "Model name (e.g. b0) to build when only checkpoints exist.")
    flags.DEFINE_integer("num_classes", 1000, "Classes of the model (and of clean/corrupted data).")
    flags.DEFINE_bool("small_images", False, "32x32-style model and preprocessing (CIFAR/SVHN).")
    flags.DEFINE_float("width_coefficient", None, "With --arch: width override used in training.")
    flags.DEFINE_float("depth_coefficient", None, "With --arch: depth override used in training.")
    flags.DEFINE_integer("image_size", None, "Input side; default the model's input size.")
    flags.DEFINE_integer("label_offset", 1, "Subtracted from TFRecord labels (ImageNet layout: 1). "
                         "Folders and TFDS are always 0-based.")
    flags.DEFINE_string("labels", None, "Class names file (labels.txt); default: labels.txt next "
                        "to the data, else the run directory's copy, else class indices.")
    flags.DEFINE_integer("batch_size", 64, "Evaluation batch size.")
    flags.DEFINE_string("output_dir", None, "Where JSON/PNG results go (default: <run>/eval).")
    flags.DEFINE_string("baseline_errors", None, "corrupted: JSON of a baseline model's errors "
                        "per corruption ({'errors': {name: error or [5 errors]}, 'clean_error'}).")
    flags.DEFINE_float("clean_error", None, "imagenet_c/corrupted: the model's clean top-1 error, "
                       "for relative mCE.")
    flags.DEFINE_float("alexnet_clean_error", None, "imagenet_c: AlexNet's clean top-1 error, "
                       "for relative mCE.")
    flags.DEFINE_list("corruptions", None, "imagenet_c/corrupted: subset of corruptions "
                      "(corrupted: default those under --data).")
    flags.DEFINE_list("severities", None, "imagenet_c/corrupted: subset of severities 1-5 "
                      "(corrupted: default those every corruption has; imagenet_c: all). An "
                      "mCE over fewer than 15 corruptions x 5 severities is marked partial.")
    flags.DEFINE_list("perturbations", None, "imagenet_p: subset of perturbations.")
    flags.DEFINE_integer("difficulty", 1, "imagenet_p: frame distance for non-noise sequences.")
    flags.DEFINE_string("baseline_flip_probabilities", None, "imagenet_p: JSON {perturbation: "
                        "flip probability} of a baseline, to report mFR normalized by it.")
    flags.DEFINE_integer("max_steps", None, "Evaluate at most this many batches (smoke tests).")
    flags.DEFINE_integer("max_videos", None, "imagenet_p: at most this many videos per "
                         "perturbation.")
    flags.DEFINE_bool("strict", False, "Fail on the first undecodable image instead of skipping.")
    flags.DEFINE_bool("traceback", False, TRACEBACK_HELP)


FLAGS = flags.FLAGS


@dataclasses.dataclass
class EvalOptions:
    """What the CLI evaluates; the fields are the flags of the same names."""

    model: str
    benchmark: str = "clean"
    data: str | None = None
    iteration: int = -1
    ema: bool = True
    arch: str | None = None
    num_classes: int = 1000
    small_images: bool = False
    width_coefficient: float | None = None
    depth_coefficient: float | None = None
    image_size: int | None = None
    label_offset: int = 1
    labels: str | None = None
    batch_size: int = 64
    output_dir: str | None = None
    baseline_errors: str | None = None
    clean_error: float | None = None
    alexnet_clean_error: float | None = None
    corruptions: list[str] | None = None
    severities: list[int] | None = None
    perturbations: list[str] | None = None
    difficulty: int = 1
    baseline_flip_probabilities: str | None = None
    max_steps: int | None = None
    max_videos: int | None = None
    strict: bool = False


def _model_fn(options: EvalOptions):
    if not options.arch:
        return None

    def build():
        from efficientnet_tf import create_model

        overrides = {"classes": options.num_classes, "small_images": options.small_images,
                     "classifier_activation": None}
        if options.image_size:
            overrides["input_shape"] = (options.image_size, options.image_size, 3)
        for key in ("width_coefficient", "depth_coefficient"):
            if getattr(options, key) is not None:
                overrides[key] = getattr(options, key)
        return create_model(options.arch, **overrides)

    return build


def default_output_dir(options: EvalOptions, info: dict) -> str:
    if options.output_dir:
        return options.output_dir
    if info.get("run_dir"):
        return os.path.join(info["run_dir"], run_layout.eval_dir(info["iteration"]))
    base = info.get("model_dir") or os.path.dirname(os.path.abspath(options.model))
    return os.path.join(base, run_layout.EVAL_DIR)


def _class_names(options: EvalOptions, run_dir: str | None) -> list[str] | None:
    """Class names for plots and per-class results: ``--labels`` (which must fit), else the
    ``labels.txt`` beside the records, else the run directory's copy; None (indices) without.
    Class-folder trees name their classes by folder instead."""
    from noisy_student.data import labels_file
    from noisy_student.evaluation import sources

    if options.labels is None and sources.is_class_folder(options.data):
        return None
    if options.labels is not None:
        names = labels_file.read_class_names(options.labels)
        if len(names) != options.num_classes:
            raise ValueError(f"{options.labels}: {len(names)} class names for --num_classes="
                             f"{options.num_classes}")
        return names
    path = labels_file.labels_file_beside(options.data) or (
        os.path.join(run_dir, labels_file.LABELS_FILE) if run_dir else None)
    return labels_file.class_names_or_none(path, options.num_classes)


def run(options: EvalOptions) -> dict:
    """Loads the model, runs the benchmark, writes its outputs; returns its result."""
    from noisy_student.evaluation import classification, loading, robustness, sources
    from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS, IMAGENET_P_PERTURBATIONS

    if options.benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {options.benchmark!r}; use one of {BENCHMARKS}")
    if options.benchmark == "report":  # no model: summarize the run directory
        from noisy_student.reporting.report import write_report

        return {"benchmark": "report", "report": write_report(options.model, options.labels)}
    if options.benchmark in ("clean", "imagenet_p", "corrupted") and not options.data:
        raise ValueError(f"--benchmark={options.benchmark} needs --data")
    model, info = loading.load_model(options.model, iteration=options.iteration,
                                        ema=options.ema, model_fn=_model_fn(options))
    size = loading.model_image_size(model, options.image_size)
    out = default_output_dir(options, info)
    common = {"image_size": size, "small_images": options.small_images, "output_dir": out}
    b = options.benchmark
    if b == "clean":
        folder = sources.is_class_folder(options.data)
        names = _class_names(options, info.get("run_dir"))
        if folder and names is None:
            names = sources.list_class_folders(options.data)[2]
        dataset = sources.labeled_source(
            options.data, image_size=size, batch_size=options.batch_size,
            num_classes=options.num_classes, label_offset=options.label_offset,
            small_images=options.small_images, strict=options.strict)
        result = classification.evaluate_classification(
            model, dataset, num_classes=options.num_classes, class_names=names,
            output_dir=out, max_steps=options.max_steps,
            extra={"source": options.data})
    elif b in ("imagenet_a", "imagenet_r"):
        result = classification.evaluate_subset(model, b, options.data,
                                            batch_size=options.batch_size,
                                            max_steps=options.max_steps, strict=options.strict,
                                            **common)
    elif b == "imagenet_c":
        result = robustness.evaluate_imagenet_c(
            model, options.data or "tfds:imagenet2012_corrupted", batch_size=options.batch_size,
            corruptions=options.corruptions or IMAGENET_C_CORRUPTIONS,
            severities=options.severities or robustness.ALL_SEVERITIES,
            clean_error=options.clean_error, alexnet_clean_error=options.alexnet_clean_error,
            max_steps=options.max_steps, strict=options.strict, **common)
    elif b == "imagenet_p":
        baseline = None
        if options.baseline_flip_probabilities:
            with open(options.baseline_flip_probabilities) as f:
                baseline = json.load(f)
        result = robustness.evaluate_imagenet_p(
            model, options.data, perturbations=options.perturbations or IMAGENET_P_PERTURBATIONS,
            difficulty=options.difficulty, baseline_flip_probabilities=baseline,
            max_videos=options.max_videos, **common)
    else:
        result = robustness.evaluate_corrupted(
            model, options.data, baseline_path=options.baseline_errors,
            num_classes=options.num_classes, batch_size=options.batch_size,
            label_offset=options.label_offset, corruptions=options.corruptions,
            severities=options.severities,
            clean_error=options.clean_error, max_steps=options.max_steps,
            strict=options.strict, **common)
    result.setdefault("model", info)
    return result


def summary(result: dict) -> str:
    """Short text for the terminal: the table, or the headline numbers."""
    if "table" in result:
        return result["table"]
    keys = ("benchmark", "top1", "top5", "num_examples", "mean_error", "report")
    return json.dumps({k: result[k] for k in keys if k in result}, indent=1)


def severities_flag(values: list[str] | None) -> list[int] | None:
    """--severities as integers 1-5; an app.UsageError naming the flag otherwise."""
    if not values:
        return None
    if not all(v.strip().isdigit() and 1 <= int(v) <= 5 for v in values):
        raise app.UsageError(f"--severities must be integers from 1 to 5, got {','.join(values)}")
    return sorted({int(v) for v in values})


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    logging.getLogger().setLevel(logging.INFO)
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(EvalOptions)}
    options = EvalOptions(**{**values, "severities": severities_flag(FLAGS.severities)})
    # A missing optional package (tfds, imagecorruptions, ...) is an expected failure here too.
    result = run_or_exit("noisy-student-eval", lambda: run(options), traceback=FLAGS.traceback,
                         also=(ImportError,))
    print(summary(result))


def run_cli() -> None:
    """Entry point: ``python -m noisy_student.cli.evaluate``."""
    from noisy_student.cli.runner import run_tool

    run_tool(__name__, define_flags, main, "noisy-student-eval")


if __name__ == "__main__":
    run_cli()
