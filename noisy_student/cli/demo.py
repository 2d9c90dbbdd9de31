"""`make demo`: Noisy Student on the bundled CIFAR-10 sample, end to end, on a laptop CPU.

Teacher (1,000 labeled images) -> pseudo labels for 9,000 unlabeled images -> filter and balance
-> one noised student -> evaluation on 2,000 test images -> SavedModel export. Prints a table of
results, training diagnostics and timings and writes `demo_run/demo.png` (accuracy per stage and
training curves) and `demo_run/report.md` (with the images the filter kept per class).
Rerunning resumes (or skips) finished stages; `make clean` starts over.

    noisy-student-demo [--verbose] [--run_dir=demo_run] [any noisy-student flag]  # any folder
    python -m noisy_student.cli.demo                                         # the same

The flags come from the bundled ``configs/demo.cfg``; its data patterns name the bundled sample
(``noisy_student.assets``), so an installed package runs the demo from any folder.
"""

from __future__ import annotations

import os
import sys

from absl import flags as absl_flags

from noisy_student import assets, console
from noisy_student.cli import flags as cli_flags

FLAGS = cli_flags.FLAGS
PROGRAM = "noisy-student-demo"
absl_flags.adopt_module_key_flags(cli_flags)  # --help lists the noisy-student flags


def plot(run_dir: str, rows: list, path: str) -> str:
    """Accuracy per model (the run's result rows) and the training-loss curves, as a PNG
    written atomically."""
    from noisy_student.plots import new_figure, write_png
    from noisy_student.reporting.rows import clean_evaluations
    from noisy_student.run.layout import model_dir
    from noisy_student.training.summaries import read_scalars

    evals = [(row.model, row.value) for row in clean_evaluations(rows) if row.value is not None]
    figure = new_figure(11, 4)
    left, right = figure.subplots(1, 2)
    left.bar([name for name, _ in evals], [100 * top1 for _, top1 in evals], color="tab:blue")
    for index, (_, top1) in enumerate(evals):
        left.text(index, 100 * top1 + 0.5, f"{100 * top1:.1f}", ha="center")
    left.set_ylabel("test top-1 (%)")
    left.set_title("Accuracy per stage")
    for iteration, label in [(0, "teacher"), (1, "student")]:
        scalars = read_scalars(os.path.join(run_dir, model_dir(iteration), "train"))
        for tag, style in (("train/labeled_loss", "-"), ("train/unlabeled_loss", "--")):
            points = [(step, value) for step, value in scalars.get(tag, []) if value > 0]
            if points:
                steps, values = zip(*points, strict=True)
                right.plot(steps, values, style, label=f"{label} {tag.split('/')[1]}")
    right.set_xlabel("step")
    right.set_ylabel("loss")
    right.set_title("Training curves")
    right.legend()
    return write_png(figure, path)


def main(argv: list[str]) -> None:
    from noisy_student.cli.main import run_mode, validate_or_exit
    from noisy_student.cli.runner import run_or_exit
    from noisy_student.export.artifacts import saved_model_line
    from noisy_student.reporting.rows import result_rows
    from noisy_student.reporting.summary import format_table

    console.configure(FLAGS.verbose)  # before TensorFlow loads: its C++ log level
    validate_or_exit(PROGRAM, argv)
    manifest = run_or_exit(PROGRAM, lambda: run_mode("loop", FLAGS.iteration),
                           traceback=FLAGS.traceback)
    rows = result_rows(manifest)
    print(format_table(rows))
    png = plot(FLAGS.run_dir, rows, os.path.join(FLAGS.run_dir, "demo.png"))
    print(
        f"plot: {png}\nreport: {os.path.join(FLAGS.run_dir, 'report.md')}\n"
        f"SavedModel ({saved_model_line()}): {manifest['stages']['export']['export_dir']}"
    )


def demo_argv(argv: list[str]) -> list[str]:
    """The demo's command line: the bundled demo flagfile first, so any flag given in ``argv``
    overrides it."""
    return [argv[0], f"--flagfile={assets.config_path('demo')}", *argv[1:]]


def run() -> None:
    """Console-script entry point."""
    from noisy_student.cli.runner import run_program, show_flags_in_help

    show_flags_in_help(cli_flags.__name__)
    run_program(PROGRAM, main, argv=demo_argv(sys.argv))


if __name__ == "__main__":
    run()
