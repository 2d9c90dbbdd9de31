"""`noisy-student` command line: train a teacher, pseudo-label, filter, train students, evaluate
and export, as one resumable loop or one stage at a time.

    noisy-student --flagfile=configs/demo.cfg                    # the whole loop
    noisy-student --flagfile=configs/cifar10_4000.cfg --mode=label --iteration=1
    python -m noisy_student.cli.main --helpfull
"""

from __future__ import annotations

import json
import logging
import os

from absl import flags as absl_flags

from noisy_student import console
from noisy_student.cli import flags as cli_flags
from noisy_student.run.layout import MANIFEST, stage_for_mode

FLAGS = cli_flags.FLAGS
absl_flags.adopt_module_key_flags(cli_flags)  # `python -m noisy_student.cli.main --help`


def run_mode(mode: str, iteration: int) -> dict:
    """Runs one mode with the run directory locked for this worker role and returns what it
    recorded."""
    from noisy_student.run.lock import run_dir_lock
    from noisy_student.run.workers import worker_info

    config = cli_flags.run_config()
    worker = worker_info(config.worker_index, config.num_workers)
    with run_dir_lock(config.run_dir, worker.index):
        return _run_locked(mode, iteration, config)


def _run_locked(mode: str, iteration: int, config) -> dict:
    from noisy_student.pipeline.loop import Run

    if mode == "eval_corrupted" or (mode == "eval" and FLAGS.eval_benchmark != "clean"):
        return {mode: robustness_eval(mode, iteration)}
    run = Run(config)
    run.prepare()  # before any work: stale temps removed, recorded settings checked
    if mode == "loop":
        stages = run.run_all()["stages"]
        if run.chief:
            write_run_report(run.config.run_dir)
        return stages
    stage = stage_for_mode(mode, iteration)
    return {stage.name: run.run_stage(stage)}


def write_run_report(run_dir: str) -> str | None:
    """Writes ``<run_dir>/report.md`` and its PNGs at the end of a loop (seconds: two figures
    and a few hundred records). The run's results are already in its manifest, so a failure is
    logged with the command to retry, not raised."""
    from noisy_student.reporting.report import write_report

    try:
        return write_report(run_dir)
    except Exception:  # noqa: BLE001 - a report must not fail a finished run
        logging.getLogger(__name__).exception(
            "report.md was not written; retry with noisy-student-eval --benchmark=report "
            "--model=%s", run_dir)
        return None


def robustness_eval(mode: str, iteration: int) -> dict:
    """--mode=eval with a robustness --eval_benchmark, or --mode=eval_corrupted: the run's model
    of `iteration` (0 = teacher), evaluated as noisy-student-eval does
    (noisy_student.evaluation.benchmarks)."""
    from noisy_student.evaluation.benchmarks import EvalOptions, evaluate_benchmark

    config = cli_flags.run_config()
    names = [config.teacher_model, *config.student_models]
    return evaluate_benchmark(
        EvalOptions(
            model=config.run_dir,
            iteration=iteration,
            benchmark="corrupted" if mode == "eval_corrupted" else FLAGS.eval_benchmark,
            data=FLAGS.eval_benchmark_data,
            arch=names[iteration],
            num_classes=config.num_classes,
            small_images=config.small_images,
            width_coefficient=config.width_coefficient,
            depth_coefficient=config.depth_coefficient,
            image_size=config.image_size,
            label_offset=config.label_offset,
            batch_size=config.eval_batch_size,
            baseline_errors=FLAGS.baseline_errors,
        )
    )


def validate_or_exit(program: str, argv: list[str]) -> None:
    """Checks the command line before any work: one message naming the flag (and its
    flagfile line) and exit status 2 if it is bad (noisy_student.cli.runner.usage_error)."""
    from noisy_student.cli.runner import usage_error

    if len(argv) > 1:
        usage_error(program, f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    try:
        cli_flags.validate()
    except cli_flags.FlagError as err:
        usage_error(program, str(err))


def run_or_exit(program: str) -> dict:
    """Runs the chosen mode; an expected failure prints one line and exits with status 2
    (--traceback re-raises it with its stack; noisy_student.cli.runner.run_or_exit)."""
    from noisy_student.cli import runner

    return runner.run_or_exit(program, lambda: run_mode(FLAGS.mode, FLAGS.iteration),
                           traceback=FLAGS.traceback)


def main(argv: list[str]) -> None:
    console.configure(FLAGS.verbose)  # before TensorFlow loads: its C++ log level
    validate_or_exit("noisy-student", argv)
    results = run_or_exit("noisy-student")
    if FLAGS.mode in ("eval_corrupted",) or (
        FLAGS.mode == "eval" and FLAGS.eval_benchmark != "clean"
    ):
        print(json.dumps(results, indent=1, sort_keys=True))
    else:
        from noisy_student.reporting.summary import format_table

        print(format_table(results))
        print(f"Results of every stage: {os.path.join(FLAGS.run_dir, MANIFEST)}")
        import tensorflow as tf

        report = os.path.join(FLAGS.run_dir, "report.md")
        if FLAGS.mode == "loop" and tf.io.gfile.exists(report):
            print(f"Report (accuracy per iteration, images the filter kept): {report}")


def run() -> None:
    """Console-script entry point; ``configs/...`` and ``sample_data/...`` paths find the
    bundled files from any folder (noisy_student.assets)."""
    from noisy_student.cli.runner import run_program, show_flags_in_help

    show_flags_in_help(cli_flags.__name__)
    run_program("noisy-student", main)


if __name__ == "__main__":
    run()
