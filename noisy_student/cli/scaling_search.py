"""Compound-scaling grid search: step 1 of the EfficientNet paper on your data and base network.

    noisy-student-scaling-search --flagfile=configs/demo.cfg --output_dir=scaling_demo \\
        --train_epochs=5 --grid_step=0.1
    noisy-student-scaling-search --flagfile=configs/demo.cfg --output_dir=scaling_demo \\
        --rank_by=nas --dry_run

With phi fixed at 1, every (alpha, beta, gamma) on a grid (1, 1 + step, 1 + 2 step, ...) with
alpha * beta^2 * gamma^2 within --tolerance of --target_multiplier (the paper: ~2) scales the
base network: depth x alpha, width x beta, resolution x gamma. Each candidate is trained exactly
as `noisy-student --mode=teacher` trains a teacher (the same recipe flags, a flagfile works) for a
short budget (--train_epochs), scored on --eval_data (top-1, the EMA weights) and ranked by
accuracy, or (--rank_by=nas) by the NAS objective ACC * (FLOPS / T)^w with T = base MACs x
--target_multiplier and w = --nas_weight. FLOPs are multiply-adds (efficientnet_tf.complexity,
as efficientnet-count-flops). Step 2 of the paper: the winner's create_model(phi=...) call and
noisy-student flags are printed for each of --phis.

The base network is --base_model (default --teacher_model) with the run's --width_coefficient,
--depth_coefficient, --image_size and --small_images. Output in --output_dir:
candidates/<name>/ (one noisy-student run directory per candidate: checkpoints, manifest.json,
teacher/model.keras), scaling_search.json, scaling_search.txt (the table) and scaling_search.png
(top-1 against MACs), each written under a temporary name and renamed. Rerunning the command
resumes: finished candidates are not retrained, a killed one continues from its last checkpoint.
A candidate whose loss diverged is recorded as such and skipped on reruns (delete its folder to
retry). The other noisy-student flags are accepted (so its flagfiles work) and ignored.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.analysis.scaling_grid import (  # noqa: E402
    NAS_WEIGHT,
    BaseNetwork,
    Candidate,
    parse_candidates,
    rank_results,
)
from noisy_student.analysis.scaling_search import (  # noqa: E402
    SearchOptions,
    base_network,
    candidate_list,
    describe,
    format_table,
    search,
    step2_text,
)
from noisy_student.cli.runner import run_tool, usage_error  # noqa: E402

FLAGS = flags.FLAGS

# noisy-student flags that shape a candidate's training and evaluation, listed by --help (the
# others are accepted and ignored). tests/test_scaling_search.py checks that this covers the
# teacher stage's settings (noisy_student.run.directory.TEACHER_SETTINGS).
RECIPE_FLAGS = (
    "label_data", "eval_data", "label_offset", "num_classes", "num_train_images", "strict_data",
    "teacher_model", "small_images", "width_coefficient", "depth_coefficient", "image_size",
    "train_batch_size", "eval_batch_size", "train_epochs", "optimizer", "base_learning_rate",
    "final_base_lr", "lr_schedule", "lr_warmup_epochs", "lr_decay_epochs", "weight_decay",
    "label_smoothing", "moving_average_decay", "dropout_rate", "stochastic_depth_rate",
    "precision", "teacher_randaug", "teacher_randaug_num_layers", "teacher_randaug_magnitude",
    "randaug_num_layers", "randaug_magnitude", "steps_per_loop",
    "seed", "checkpoint_every", "summary_every", "strategy", "tpu", "quiet", "redo_changed_stages",
    "traceback",
)
SEARCH_DEFAULT_EPOCHS = 5.0  # this tool's default --train_epochs: a short budget per candidate
PROGRAM = "noisy-student-scaling-search"


def define_flags() -> None:
    """The noisy-student flags (the training recipe; its flagfiles work) and the search's."""
    from noisy_student.cli import flags as recipe_flags  # noqa: F401 - defines the recipe flags

    flags.DEFINE_string("output_dir", None, "Folder of the search: candidates/<name>/ (one "
                        "noisy-student run directory per candidate) and scaling_search.json, "
                        ".txt and .png. Rerun the same command to resume.")
    flags.DEFINE_string("base_model", None, "Base network preset (b0..b8, l2); default "
                        "--teacher_model. --width_coefficient, --depth_coefficient, "
                        "--image_size and --small_images describe the base, not a candidate.")
    flags.DEFINE_float("target_multiplier", 2.0, "FLOPs multiplier the candidates aim at: "
                       "alpha * beta^2 * gamma^2 (the paper: 2, i.e. phi = 1 doubles FLOPs).")
    flags.DEFINE_float("tolerance", 0.05, "Candidates keep |alpha * beta^2 * gamma^2 - "
                       "--target_multiplier| <= this (inclusive). The paper's B0 coefficients "
                       "1.2, 1.1, 1.15 give 1.92: they need 0.08.")
    flags.DEFINE_float("grid_step", 0.05, "Spacing of the alpha, beta, gamma grid, which starts "
                       "at 1 (step 0.05 and tolerance 0.05 around 2: 55 candidates; step 0.1: "
                       "10).")
    flags.DEFINE_list("candidates", None, "Explicit candidates alpha:beta:gamma (e.g. "
                      "1.2:1.1:1.15,2:1:1) instead of the grid.")
    flags.DEFINE_enum("rank_by", "accuracy", ["accuracy", "nas"], "accuracy: top-1 on "
                      "--eval_data; nas: ACC * (FLOPS / T)^w with T = base MACs x "
                      "--target_multiplier and w = --nas_weight (penalizes going over T, "
                      "rewards staying under it).")
    flags.DEFINE_float("nas_weight", NAS_WEIGHT, "Exponent w of the NAS objective (MnasNet and "
                       "the EfficientNet-B0 search: -0.07).")
    flags.DEFINE_list("phis", ["1", "2", "3"], "Step 2: compound coefficients for which the "
                      "winner's create_model call and noisy-student flags are printed.")
    flags.DEFINE_bool("dry_run", False, "List the candidates with their sizes and MACs; train "
                      "nothing.")
    FLAGS.set_default("train_epochs", SEARCH_DEFAULT_EPOCHS)


def show_recipe_flags_in_help() -> None:
    """Lists the recipe flags that matter here in --help (all of them: --helpfull)."""
    for name in RECIPE_FLAGS:
        FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])


def options_from_flags() -> SearchOptions:
    try:
        phis = [float(p) for p in FLAGS.phis]
    except ValueError:
        raise app.UsageError(f"--phis must be numbers, got {FLAGS.phis}") from None
    try:
        candidates = parse_candidates(FLAGS.candidates) if FLAGS.candidates else None
    except ValueError as err:
        raise app.UsageError(f"--candidates: {err}") from None
    return SearchOptions(
        output_dir=FLAGS.output_dir, base_model=FLAGS.base_model, candidates=candidates,
        target_multiplier=FLAGS.target_multiplier, tolerance=FLAGS.tolerance,
        grid_step=FLAGS.grid_step, rank_by=FLAGS.rank_by, nas_weight=FLAGS.nas_weight,
        phis=phis)


def validate_recipe() -> None:
    """The noisy-student checks of a --mode=teacher command (data patterns, ranges, ...)."""
    from noisy_student.cli import flags as recipe_flags

    FLAGS.mode, FLAGS.run_dir, FLAGS.iteration = "teacher", FLAGS.output_dir, 1
    FLAGS.teacher_checkpoint = None
    try:
        recipe_flags.validate()
        if not FLAGS.dry_run and not FLAGS.eval_data:
            raise recipe_flags.FlagError("--eval_data is required: each candidate is scored "
                                         "on it.")
    except recipe_flags.FlagError as err:
        usage_error(PROGRAM, str(err))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required.")
    options = options_from_flags()
    validate_recipe()
    import logging

    from noisy_student.cli.flags import run_config
    from noisy_student.cli.runner import run_or_exit

    logging.getLogger().setLevel(logging.INFO)
    recipe = run_config()

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if FLAGS.dry_run:
        base = run_or_exit(PROGRAM,
                           lambda: base_network(recipe, options.base_model),
                           traceback=FLAGS.traceback)
        rows = [describe(base, c) for c in candidate_list(options)]
        print(f"Base {base.model}: width {base.width:g}, depth {base.depth:g}, "
              f"{base.resolution} px, {base.macs() / 1e6:.2f} MMACs; {len(rows)} "
              "candidates (dry run: nothing trained)")
        print(format_table(rank_results(rows, rank_by=options.rank_by,
                                        target_flops=base.macs() * options.target_multiplier,
                                        weight=options.nas_weight),
                           rank_by=options.rank_by))
        return
    results = run_or_exit(PROGRAM,
                          lambda: search(recipe, options, progress=progress),
                          traceback=FLAGS.traceback)
    base = BaseNetwork(**{k: v for k, v in results["base"].items() if k != "macs"})
    best = results["best"]
    winner = Candidate(best["alpha"], best["beta"], best["gamma"]) if best else None
    print(format_table(results["candidates"], rank_by=options.rank_by))
    print()
    print(step2_text(base, winner, options.phis))


def run() -> None:
    """Console-script entry point."""

    def define() -> None:
        define_flags()
        show_recipe_flags_in_help()

    run_tool(__name__, define, main, PROGRAM)


if __name__ == "__main__":
    run()
