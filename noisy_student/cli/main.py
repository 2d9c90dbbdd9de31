"""`noisy-student` command line: train a teacher, pseudo-label, filter, train students, evaluate
and export, as one resumable loop or one stage at a time.

    noisy-student --flagfile=configs/demo.cfg                    # the whole loop
    noisy-student --flagfile=configs/cifar10_4000.cfg --mode=label --iteration=1
    python -m noisy_student.cli.main --helpfull
"""

from __future__ import annotations

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
    recorded: the manifest after a loop, ``{"stages": {name: result}}`` after one stage, a
    benchmark's result (`benchmark_mode`)."""
    from noisy_student.run.lock import run_dir_lock
    from noisy_student.run.workers import worker_info

    config = cli_flags.run_config()
    worker = worker_info(config.worker_index, config.num_workers)
    with run_dir_lock(config.run_dir, worker.index):
        return _run_locked(mode, iteration, config)


def _run_locked(mode: str, iteration: int, config) -> dict:
    from noisy_student.pipeline.loop import Run

    if benchmark_mode(mode):
        return robustness_eval(mode, iteration)
    run = Run(config)
    run.prepare()  # before any work: stale temps removed, recorded settings checked
    if mode == "loop":
        manifest = run.run_all()
        if run.chief:
            write_run_report(run.config.run_dir)
        return manifest
    stage = stage_for_mode(mode, iteration)
    return {"stages": {stage.name: run.run_stage(stage)}}


def benchmark_mode(mode: str) -> bool:
    """--mode=eval_corrupted, or --mode=eval with a robustness --eval_benchmark."""
    return mode == "eval_corrupted" or (mode == "eval" and FLAGS.eval_benchmark != "clean")


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
    of `iteration` (0 = teacher), evaluated as noisy-student-eval does and recorded in the
    run's manifest (noisy_student.evaluation.benchmarks)."""
    from noisy_student.evaluation.benchmarks import EvalOptions, evaluate_benchmark

    benchmark = "corrupted" if mode == "eval_corrupted" else FLAGS.eval_benchmark
    return evaluate_benchmark(EvalOptions.for_run(
        cli_flags.run_config(), iteration, benchmark=benchmark, data=FLAGS.eval_benchmark_data,
        baseline_errors=FLAGS.baseline_errors))


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
    if benchmark_mode(FLAGS.mode):
        from noisy_student.evaluation.benchmarks import result_text

        print(result_text(results))
    else:
        from noisy_student.reporting.rows import result_rows
        from noisy_student.reporting.summary import format_table

        print(format_table(result_rows(results)))
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
