"""Scaling study on CIFAR-10: width, depth, resolution and compound scaling at matched FLOPs.

The EfficientNet paper's Figure 8 in miniature. From the small-image B0 of the CIFAR-10 recipe
(width 0.5, depth 0.5, 32 px: ``configs/cifar10_4000.cfg``), each method grows one knob until
the network's actual multiply-adds (``efficientnet_tf.complexity.count_macs``, the rounding of
channels to multiples of 8 and of repeats upwards included) are as close as the knob allows to
--targets times the base's (default 2x and 4x):

  width       width x m, m on a 0.01 grid
  depth       depth x m, m on a 0.01 grid (repeats round up, so few sizes exist: the nearest
              one can be well off the target; the table and plot show the actual ratio)
  resolution  input side in whole pixels (the 32x32 images are resized up: no new detail)
  compound    the paper's depth 1.2^phi, width 1.1^phi, resolution 1.15^phi, phi on a 0.01 grid

Every model, the base included, is trained for the same short budget exactly as
``noisy-student --mode=teacher`` trains a teacher (the flagfile's recipe, any further
``--flag=value`` passed through; the study sets --train_epochs=12 unless one is given) and
scored on the 10,000 test images, through the candidate trainer of
``noisy-student-scaling-search`` (one noisy-student run directory per model:
OUT_DIR/models/<name>/). Data: the 4,000 labeled train images and the 10,000 test images that
``benchmarks/self_training_cifar10.py`` builds (only those two splits are built here if
missing). Results, rewritten after each model (temporary name, then rename):
OUT_DIR/scaling_study.json, scaling_study.md (the table) and scaling_study.png (top-1
against MACs, a line per method). Rerunning resumes: finished models are not retrained, a
killed one continues from its last checkpoint.

    python benchmarks/scaling_study.py --dry_run          # the plan: models, knobs, MACs
    python benchmarks/scaling_study.py                    # the study (--train_epochs=12 each)
    python benchmarks/scaling_study.py --train_epochs=0.05 --methods=width --targets=2 \\
        --out_dir=runs/scaling_smoke                      # a quick smoke run

Relative paths (here and in the flagfile) are relative to the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from self_training_cifar10 import (  # noqa: E402
    CIFAR_DIR,
    ROOT,
    _fmt_pct,
    _fmt_time,
    build_data,
    check_passthrough,
    choice_list,
)

sys.path.insert(0, ROOT)
from noisy_student.analysis import scaling_search
from noisy_student.analysis.scaling_grid import BaseNetwork, Candidate  # noqa: E402

METHODS = ("width", "depth", "resolution", "compound")
COMPOUND = (1.2, 1.1, 1.15)  # the paper's alpha (depth), beta (width), gamma (resolution)
GRID_STEP = 0.01  # spacing of the width and depth multipliers and of phi
OVERSHOOT = 1.5  # the search of a knob stops past target x this
MAX_GRID_POINTS = 5000
DEFAULT_TARGETS = (2.0, 4.0)
DEFAULT_TOLERANCE = 0.05
STUDY_EPOCHS = 12.0  # --train_epochs of every model unless given: 375 steps of 128 of 4,000
DATA_SPLITS = ("train", "validation")
MODELS_DIR = "models"
RESULTS_JSON = "scaling_study.json"
RESULTS_TABLE = "scaling_study.md"
RESULTS_PNG = "scaling_study.png"
COLORS = {"width": "tab:blue", "depth": "tab:orange", "resolution": "tab:green",
          "compound": "tab:red"}


# ------------------------------------------------------------------------------------------
# The plan: one knob per method, solved for the target MACs


@dataclasses.dataclass(frozen=True)
class StudyModel:
    """One model of the study: the base, or the base scaled by `method` to about `target` x
    its MACs with the knob at `parameter` (width or depth multiplier, resolution in pixels,
    or phi)."""

    method: str  # 'base' or one of METHODS
    target: float
    parameter: float

    @property
    def name(self) -> str:
        return "base" if self.method == "base" else f"{self.method}_{self.target:g}x"

    @property
    def knob(self) -> str:
        """The knob's setting in words, e.g. 'width x1.49', '41 px', 'phi 0.73'."""
        if self.method in ("width", "depth"):
            return f"{self.method} x{self.parameter:g}"
        if self.method == "resolution":
            return f"{int(self.parameter)} px"
        if self.method == "compound":
            return f"phi {self.parameter:g}"
        return "-"

    def candidate(self, base: BaseNetwork) -> Candidate:
        """The (depth, width, resolution) multipliers at phi = 1, as scaling_search takes them."""
        return candidate_for(self.method, self.parameter, base)


def candidate_for(method: str, parameter: float, base: BaseNetwork) -> Candidate:
    if method == "base":
        return Candidate(1.0, 1.0, 1.0)
    if method == "width":
        return Candidate(1.0, parameter, 1.0)
    if method == "depth":
        return Candidate(parameter, 1.0, 1.0)
    if method == "resolution":  # compound_scaling rounds base.resolution * gamma back to this
        return Candidate(1.0, 1.0, parameter / base.resolution)
    if method == "compound":
        alpha, beta, gamma = COMPOUND
        return Candidate(alpha**parameter, beta**parameter, gamma**parameter)
    raise ValueError(f"unknown scaling method {method!r}; choose from {', '.join(METHODS)}")


def knob_values(method: str, base: BaseNetwork):
    """The knob's settings in increasing order: resolution base + 1, + 2, ... pixels; phi
    0.01, 0.02, ...; width and depth multipliers 1.01, 1.02, ..."""
    for k in range(1, MAX_GRID_POINTS + 1):
        if method == "resolution":
            yield base.resolution + k
        elif method == "compound":
            yield round(k * GRID_STEP, 10)
        else:
            yield round(1 + k * GRID_STEP, 10)


def macs_of(base: BaseNetwork, candidate: Candidate) -> int:
    """Multiply-adds of the network the trainer builds for `candidate` (scaling_search's
    rule: base.scaled, then count_macs)."""
    return base.macs(*base.scaled(candidate))


def solve(base: BaseNetwork, method: str, target: float) -> StudyModel:
    """The knob setting whose actual MACs are closest to `target` x the base's (in log ratio;
    ties go to the smaller setting). Scans the knob upwards until past target x OVERSHOOT."""
    if target <= 1:
        raise ValueError(f"target {target:g} must be > 1: the study grows the base")
    base_macs = base.macs()
    best, best_error = None, math.inf
    for value in knob_values(method, base):
        ratio = macs_of(base, candidate_for(method, value, base)) / base_macs
        error = abs(math.log(ratio / target))
        if error < best_error - 1e-12:
            best, best_error = value, error
        if ratio > target * OVERSHOOT:
            return StudyModel(method, target, best)
    raise ValueError(f"{method} scaling did not reach {target:g}x the base's MACs within "
                     f"{MAX_GRID_POINTS} settings")


def plan_study(base: BaseNetwork, methods: Sequence[str] = METHODS,
               targets: Sequence[float] = DEFAULT_TARGETS) -> list[StudyModel]:
    """The base, then each method at each target (the smaller target first, so that a study
    stopped halfway has a complete comparison)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown scaling methods {unknown}; choose from {', '.join(METHODS)}")
    plan = [StudyModel("base", 1.0, 0.0)]
    for target in sorted(targets):
        plan += [solve(base, method, target) for method in methods]
    return plan


def describe(base: BaseNetwork, model: StudyModel, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """A model's row before training: knob, scaled network, MACs and how far from the target."""
    row = scaling_search.describe(base, model.candidate(base))
    row.update(name=model.name, method=model.method, target=model.target,
               parameter=model.parameter, knob=model.knob,
               target_error=row["macs_ratio"] / model.target - 1)
    row["on_target"] = abs(row["target_error"]) <= tolerance + 1e-12
    for key in ("alpha", "beta", "gamma", "multiplier"):  # scaling_search's view; knob says it
        row.pop(key)
    return row


# ------------------------------------------------------------------------------------------
# Reports


def plan_text(base: BaseNetwork, rows: Sequence[dict], tolerance: float) -> str:
    """The plan as plain text: each model's knob, network and actual MACs ratio."""
    lines = [f"Base {base.model}: width {base.width:g}, depth {base.depth:g}, "
             f"{base.resolution} px{' (small-image variant)' if base.small_images else ''}, "
             f"{base.macs() / 1e6:.2f} MMACs",
             f"{'model':<15} {'knob':<12} {'width':>6} {'depth':>6} {'res':>4} {'MMACs':>7} "
             f"{'x base':>7} {'vs target':>9}"]
    for row in rows:
        off = "" if row["on_target"] else f"  (off target by more than {100 * tolerance:g}%)"
        vs = "-" if row["method"] == "base" else f"{100 * row['target_error']:+.1f}%"
        lines.append(f"{row['name']:<15} {row['knob']:<12} {row['width']:>6.4g} "
                     f"{row['depth']:>6.4g} {row['resolution']:>4} {row['macs'] / 1e6:>7.2f} "
                     f"{row['macs_ratio']:>7.3f} {vs:>9}{off}")
    return "\n".join(lines)


def images_per_second(row: dict, batch_size: int) -> float | None:
    """Training images per second of the whole teacher stage (model build, tracing and
    checkpoints included); a resumed stage's time covers its last sitting, from
    ``resumed_from_step`` on."""
    steps, seconds = row.get("steps"), row.get("train_seconds")
    trained = (steps or 0) - (row.get("resumed_from_step") or 0)
    return trained * batch_size / seconds if trained > 0 and seconds else None


def markdown_table(rows: Sequence[dict], batch_size: int) -> str:
    """The results as a markdown table; a model off its MACs target is starred."""
    lines = ["| model | knob | width | depth | resolution | MMACs | MACs x base | top-1 | "
             "wall time | train img/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        ratio = f"{row['macs_ratio']:.2f}" + ("" if row["on_target"] else "*")
        top1 = _fmt_pct(row.get("top1")) if row.get("status") != "diverged" else "diverged"
        seconds = (row.get("train_seconds") or 0) + (row.get("eval_seconds") or 0)
        speed = images_per_second(row, batch_size)
        lines.append(f"| {row['name']} | {row['knob']} | {row['width']:.4g} | "
                     f"{row['depth']:.4g} | {row['resolution']} | {row['macs'] / 1e6:.2f} | "
                     f"{ratio} | {top1} | {_fmt_time(seconds) if seconds else '-'} | "
                     f"{f'{speed:.0f}' if speed else '-'} |")
    return "\n".join(lines) + "\n"


def report_text(document: dict) -> str:
    """scaling_study.md: what was trained, the table, the off-target note."""
    base, budget = document["base"], document["budget"]
    rows = document["models"]
    text = (f"# Scaling study: {base['model']} (width {base['width']:g}, depth "
            f"{base['depth']:g}, {base['resolution']} px"
            f"{', small-image variant' if base['small_images'] else ''}, "
            f"{base['macs'] / 1e6:.2f} MMACs)\n\n"
            f"Each model: {budget['train_epochs']:g} epochs of --label_data at batch "
            f"{budget['train_batch_size']}, top-1 of the EMA weights on --eval_data; wall time "
            "= training + evaluation stages; train img/s over the whole training stage.\n\n")
    text += markdown_table(rows, budget["train_batch_size"])
    off = [row["name"] for row in rows if not row["on_target"]]
    if off:
        text += (f"\n\\* more than {100 * document['tolerance']:g}% from its MACs target "
                 f"(the nearest size the knob allows): {', '.join(off)}.\n")
    return text


def plot_study(rows: Sequence[dict], base_macs: float, targets: Sequence[float]):
    """Top-1 against MMACs, a line per method from the base through its scaled models, the
    MACs targets dotted; returns the figure (noisy_student.plots.write_png writes it)."""
    from noisy_student import plots

    fig = plots.new_figure(7.5, 5.0)
    axes = fig.add_subplot(1, 1, 1)
    for target in targets:
        axes.axvline(base_macs * target / 1e6, color="0.75", linestyle=":", zorder=1)
    scored = [row for row in rows if row.get("top1") is not None]
    base = [row for row in scored if row["method"] == "base"]
    drawn = False
    for method in METHODS:
        points = sorted(base + [row for row in scored if row["method"] == method],
                        key=lambda row: row["macs"])
        if not any(row["method"] == method for row in points):
            continue
        x = [row["macs"] / 1e6 for row in points]
        y = [100 * row["top1"] for row in points]
        axes.plot(x, y, marker="o", color=COLORS[method], label=method, zorder=3)
        for row, xi, yi in zip(points, x, y, strict=True):
            if row["method"] == method:
                axes.annotate(row["knob"], (xi, yi), textcoords="offset points",
                              xytext=(4, -11), fontsize=7, color=COLORS[method])
        drawn = True
    if base:
        axes.annotate("base", (base[0]["macs"] / 1e6, 100 * base[0]["top1"]),
                      textcoords="offset points", xytext=(4, 5), fontsize=7)
    if not drawn:
        axes.text(0.5, 0.5, "no scaled model scored yet", transform=axes.transAxes,
                  ha="center")
    axes.set_xlabel("MMACs per image (dotted: base x " +
                    ", ".join(f"{t:g}" for t in targets) + ")")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title("Scaling the base by one dimension or by all three (compound)")
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(loc="lower right", fontsize=8)
    return fig


def results_document(base: BaseNetwork, rows: Sequence[dict], *, recipe, methods, targets,
                     tolerance: float) -> dict:
    return {"base": {**dataclasses.asdict(base), "macs": base.macs()},
            "budget": {"train_epochs": recipe.train_epochs,
                       "train_batch_size": recipe.train_batch_size,
                       "label_data": recipe.label_data, "eval_data": recipe.eval_data},
            "methods": list(methods), "targets": list(targets), "tolerance": tolerance,
            "models": list(rows)}


def write_results(out_dir: str, document: dict) -> None:
    """scaling_study.json, .md and .png, each under a temporary name, then renamed."""
    from noisy_student import plots
    from noisy_student.atomic_io import write_json_atomic, write_text_atomic

    os.makedirs(out_dir, exist_ok=True)
    write_json_atomic(os.path.join(out_dir, RESULTS_JSON), document)
    write_text_atomic(os.path.join(out_dir, RESULTS_TABLE), report_text(document))
    fig = plot_study(document["models"], document["base"]["macs"], document["targets"])
    plots.write_png(fig, os.path.join(out_dir, RESULTS_PNG))


# ------------------------------------------------------------------------------------------
# The study


def run_study(recipe, base: BaseNetwork, plan: Sequence[StudyModel], out_dir: str, *,
              methods: Sequence[str] = METHODS, targets: Sequence[float] = DEFAULT_TARGETS,
              tolerance: float = DEFAULT_TOLERANCE,
              progress: Callable[[str], None] = lambda message: None, strategy=None) -> dict:
    """Trains and scores every model of `plan` not finished before (scaling_search's
    train_candidate: the teacher and teacher/eval stages of OUT_DIR/models/<name>), rewriting
    the results after each; returns what the JSON holds. `recipe` is a
    noisy_student.config.RunConfig (its run_dir and model settings are replaced per model)."""
    import keras

    from noisy_student.atomic_io import remove_stale_temps
    from noisy_student.run.lock import run_dir_lock
    from noisy_student.run.workers import worker_info
    from noisy_student.training import is_chief, make_strategy

    rows = {model.name: describe(base, model, tolerance) for model in plan}
    strategy = strategy or make_strategy(recipe.strategy, recipe.tpu)
    chief = is_chief(strategy)
    worker = worker_info(recipe.worker_index, recipe.num_workers)

    def document() -> dict:
        return results_document(base, list(rows.values()), recipe=recipe, methods=methods,
                                targets=targets, tolerance=tolerance)

    with run_dir_lock(out_dir, worker.index):
        if chief:
            remove_stale_temps(out_dir, recursive=False)
        for index, model in enumerate(plan, start=1):
            run_dir = os.path.join(out_dir, MODELS_DIR, model.name)
            config = scaling_search.candidate_config(recipe, base, model.candidate(base), run_dir)
            label = model.name if model.method == "base" else f"{model.name} ({model.knob})"
            prefix = f"[{index}/{len(plan)}] {label}"
            fields = scaling_search.train_candidate(config, strategy, worker.index,
                                                    rows[model.name], prefix, progress)
            rows[model.name].update(fields, run_dir=os.path.relpath(run_dir, out_dir))
            keras.backend.clear_session()
            if chief:
                write_results(out_dir, document())
    return document()


# ------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], allow_abbrev=False,  # prefixes are recipe flags
        epilog="Any other --flag=value is a noisy-student flag of the training recipe (e.g. "
               f"--train_epochs, default {STUDY_EPOCHS:g} here; --seed; --eval_data).")
    parser.add_argument("--flagfile", default=os.path.join(
        ROOT, "noisy_student", "assets", "configs", "cifar10_4000.cfg"),
        help="The recipe and the base network (--width_coefficient, --depth_coefficient, "
             "--image_size, --small_images, --teacher_model).")
    parser.add_argument("--out_dir", default=os.path.join("runs", "scaling_study"),
                        help="models/<name>/ run directories and the results.")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"Comma-separated subset of {', '.join(METHODS)}.")
    parser.add_argument("--targets", default=",".join(f"{t:g}" for t in DEFAULT_TARGETS),
                        help="MACs multipliers of the base to match, comma-separated.")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="Relative MACs error above which a model is flagged off target "
                             "(it is still trained).")
    parser.add_argument("--dry_run", action="store_true",
                        help="Print the plan (models, knobs, MACs); train nothing.")
    parser.add_argument("--data_dir", default=os.path.join("runs", "cifar10_4000", "data"),
                        help="Where the CIFAR-10 TFRecords are built (the flagfile's data "
                             "patterns point here).")
    parser.add_argument("--cifar_dir", default=CIFAR_DIR, help="The uint8 npz shards.")
    args, passthrough = parser.parse_known_args(argv)
    check_passthrough(parser, passthrough)
    args.methods = choice_list(parser, "--methods", args.methods, METHODS)
    try:
        args.targets = sorted({float(t) for t in args.targets.split(",") if t})
    except ValueError:
        parser.error(f"--targets must be numbers, got {args.targets!r}")
    if not args.targets or min(args.targets) <= 1:
        parser.error("--targets must be numbers > 1 (multipliers of the base's MACs)")
    return args, passthrough


def recipe_from_flags(flagfile: str, passthrough: Sequence[str], out_dir: str):
    """The noisy-student RunConfig of the flagfile and the passed-through flags, as a
    --mode=teacher run (the study's --train_epochs default sits between the two)."""
    from absl import flags

    from noisy_student.cli import runner
    from noisy_student.cli.flags import run_config

    runner.parse_flags([sys.argv[0], f"--flagfile={flagfile}",
                        f"--train_epochs={STUDY_EPOCHS:g}", *passthrough])
    FLAGS = flags.FLAGS  # noqa: N806 - absl's name
    FLAGS.mode, FLAGS.run_dir, FLAGS.iteration = "teacher", out_dir, 1
    # Only the teacher stage runs: no checkpoint to start from, no unlabeled data (the
    # flagfile's pattern may match nothing, since the study builds only train and validation).
    FLAGS.teacher_checkpoint, FLAGS.unlabel_data = None, None
    return run_config()


def validate_recipe() -> None:
    """The checks of a noisy-student --mode=teacher command (data patterns, ranges, ...) and
    --eval_data; exits with one line on a bad flag."""
    from absl import flags

    from noisy_student.cli import flags as recipe_flags

    try:
        recipe_flags.validate()
        if not flags.FLAGS.eval_data:
            raise recipe_flags.FlagError("--eval_data is required: each model is scored on it.")
    except recipe_flags.FlagError as err:
        sys.exit(f"scaling_study.py: error: {err}")


def main(argv: Sequence[str] | None = None) -> int:
    os.chdir(ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args, passthrough = parse_args(argv)
    recipe = recipe_from_flags(args.flagfile, passthrough, args.out_dir)
    base = scaling_search.base_network(recipe)
    plan = plan_study(base, args.methods, args.targets)
    rows = [describe(base, model, args.tolerance) for model in plan]
    print(plan_text(base, rows, args.tolerance))
    print(f"{len(plan)} models, {recipe.train_epochs:g} epochs each, in {args.out_dir}",
          flush=True)
    if args.dry_run:
        return 0
    from absl import flags

    from noisy_student.cli.runner import run_or_exit

    start = time.time()
    build_data(args.data_dir, args.cifar_dir, DATA_SPLITS)
    validate_recipe()

    def progress(message: str) -> None:
        print(message, flush=True)

    document = run_or_exit(
        "scaling_study.py",
        lambda: run_study(recipe, base, plan, args.out_dir, methods=args.methods,
                          targets=args.targets, tolerance=args.tolerance, progress=progress),
        traceback=flags.FLAGS.traceback)
    print()
    print(report_text(document))
    print(f"total wall time {_fmt_time(time.time() - start)}; wrote "
          f"{os.path.join(args.out_dir, RESULTS_JSON)}, {RESULTS_TABLE} and {RESULTS_PNG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
