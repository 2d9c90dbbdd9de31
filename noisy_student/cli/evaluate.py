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

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.evaluation.benchmarks import (  # noqa: E402
    BENCHMARKS,
    EvalOptions,
    evaluate_benchmark,
    result_text,
)


def define_flags() -> None:
    """Defines this program's flags on absl's global FLAGS. Only the entry point calls it, so
    importing this module (e.g. from main.py, whose flags share some names) defines nothing."""
    flag_groups.define_model_flags(checkpoints=True)
    flags.DEFINE_enum("benchmark", "clean", [*BENCHMARKS, "report"], "What to evaluate "
                      "('report': write <run dir>/report.md and report/*.png from the run's "
                      "results, no evaluation).")
    flag_groups.define_data_flags(
        "TFRecord pattern, class-folder tree or tfds:NAME@SPLIT (clean); the benchmark's folder "
        "tree or tfds spec (imagenet_*; TFDS by default for imagenet_a/r/c); "
        "noisy-student-make-corrupted output (corrupted).")
    flag_groups.define_labels_flag("labels.txt next to the data, else the run directory's "
                                   "copy, else class indices.")
    flags.DEFINE_string("output_dir", None, "Where JSON/PNG results go (default: <run>/eval).")
    flag_groups.define_baseline_errors_flag("corrupted")
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
    flags.DEFINE_integer("difficulty", 1, "imagenet_p: frame distance for non-noise sequences.",
                         lower_bound=1)
    flags.DEFINE_string("baseline_flip_probabilities", None, "imagenet_p: JSON {perturbation: "
                        "flip probability} of a baseline, to report mFR normalized by it.")
    flags.DEFINE_integer("max_steps", None, "Evaluate at most this many batches (smoke tests).",
                         lower_bound=1)
    flags.DEFINE_integer("max_videos", None, "imagenet_p: at most this many videos per "
                         "perturbation.", lower_bound=1)
    flags.DEFINE_bool("strict", False, "Fail on the first undecodable image instead of skipping.")
    flag_groups.define_traceback_flag()


FLAGS = flags.FLAGS


def run(options: EvalOptions) -> dict:
    """The benchmark of ``options`` (``evaluation.benchmarks``), or with ``--benchmark=report``
    the run directory's report.md (no model)."""
    if options.benchmark == "report":
        from noisy_student.reporting.report import write_report

        return {"benchmark": "report", "report": write_report(options.model, options.labels)}
    return evaluate_benchmark(options)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    if not FLAGS.model:
        raise app.UsageError("--model is required")
    logging.getLogger().setLevel(logging.INFO)
    from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS, IMAGENET_P_PERTURBATIONS

    named = {}  # the published sets' names are known; a corrupted tree's are its folders
    if FLAGS.benchmark == "imagenet_c":
        named["corruptions"] = flag_groups.names_flag("--corruptions", FLAGS.corruptions,
                                                      IMAGENET_C_CORRUPTIONS)
    if FLAGS.benchmark == "imagenet_p":
        named["perturbations"] = flag_groups.names_flag("--perturbations", FLAGS.perturbations,
                                                        IMAGENET_P_PERTURBATIONS)
    options = flag_groups.call_with_flags(
        EvalOptions, severities=flag_groups.severities_flag(FLAGS.severities), **named)
    result = run(options)
    print(result_text(result))


def run_cli() -> None:
    """Entry point: ``python -m noisy_student.cli.evaluate``."""
    from noisy_student.cli.runner import run_tool

    # A missing optional package (tfds, imagecorruptions, ...) is an expected failure here too.
    run_tool(__name__, define_flags, main, "noisy-student-eval", also=(ImportError,))


if __name__ == "__main__":
    run_cli()
