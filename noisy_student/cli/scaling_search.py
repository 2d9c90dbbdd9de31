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

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli.runner import run_tool, usage_error  # noqa: E402

FLAGS = flags.FLAGS

RESULTS_JSON = "scaling_search.json"
RESULTS_TABLE = "scaling_search.txt"
RESULTS_PNG = "scaling_search.png"
CANDIDATES_DIR = "candidates"
DIVERGED = "diverged.json"
NAS_WEIGHT = -0.07  # MnasNet / EfficientNet-B0 search: ACC * (FLOPS / T)^w
_EPSILON = 1e-9  # products are compared with this slack, so grid values on the bound count

# noisy-student flags that shape a candidate's training and evaluation, listed by --help (the
# others are accepted and ignored). tests/test_scaling_search.py checks that this covers the
# teacher stage's settings (noisy_student.run.directory.TEACHER_SETTINGS).
RECIPE_FLAGS = (
    "label_data", "eval_data", "label_offset", "num_classes", "num_train_images", "strict_data",
    "teacher_model", "small_images", "width_coefficient", "depth_coefficient", "image_size",
    "train_batch_size", "eval_batch_size", "train_epochs", "optimizer", "base_learning_rate",
    "final_base_lr", "lr_schedule", "lr_warmup_epochs", "lr_decay_epochs", "weight_decay",
    "label_smoothing", "moving_average_decay", "dropout_rate", "stochastic_depth_rate",
    "precision", "teacher_randaug", "randaug_num_layers", "randaug_magnitude", "steps_per_loop",
    "seed", "checkpoint_every", "summary_every", "strategy", "tpu", "quiet", "redo_changed_stages",
    "traceback",
)
SEARCH_DEFAULT_EPOCHS = 5.0  # this tool's default --train_epochs: a short budget per candidate
PROGRAM = "noisy-student-scaling-search"


# ------------------------------------------------------------------------------------------
# Candidates


class Candidate(NamedTuple):
    """Depth (alpha), width (beta) and resolution (gamma) multipliers at phi = 1."""

    alpha: float
    beta: float
    gamma: float

    @property
    def multiplier(self) -> float:
        """The nominal FLOPs multiplier alpha * beta^2 * gamma^2."""
        return self.alpha * self.beta**2 * self.gamma**2

    @property
    def name(self) -> str:
        """Folder name of the candidate, e.g. 'a1.2_b1.1_g1.15'."""
        return f"a{self.alpha:g}_b{self.beta:g}_g{self.gamma:g}"

    @property
    def label(self) -> str:
        return f"\u03b1{self.alpha:g} \u03b2{self.beta:g} \u03b3{self.gamma:g}"


def grid_candidates(target: float = 2.0, tolerance: float = 0.05,
                    step: float = 0.05) -> list[Candidate]:
    """Every (alpha, beta, gamma) on the grid 1, 1 + step, 1 + 2 step, ... with
    |alpha * beta^2 * gamma^2 - target| <= tolerance (bounds inclusive), sorted by alpha, then
    beta, then gamma. Grid values are rounded to 10 decimals (1 + 3 * 0.05 is 1.15)."""
    if step <= 0:
        raise ValueError(f"grid step must be > 0, got {step}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if target + tolerance < 1:
        raise ValueError(f"target multiplier {target} +- {tolerance} is below 1: with alpha, "
                         "beta, gamma >= 1 no candidate can shrink the model")
    high = target + tolerance + _EPSILON

    def values(limit: float) -> list[float]:
        out, k = [], 0
        while (value := round(1 + k * step, 10)) <= limit:
            out.append(value)
            k += 1
        return out

    found = []
    for alpha in values(high):
        for beta in values(math.sqrt(high / alpha)):
            for gamma in values(math.sqrt(high / (alpha * beta**2))):
                candidate = Candidate(alpha, beta, gamma)
                if abs(candidate.multiplier - target) <= tolerance + _EPSILON:
                    found.append(candidate)
    return found


def parse_candidates(entries: Sequence[str]) -> list[Candidate]:
    """'1.2:1.1:1.15' entries (alpha:beta:gamma) -> candidates, in order, duplicates dropped."""
    out: list[Candidate] = []
    for entry in entries:
        parts = entry.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            candidate = Candidate(*(float(p) for p in parts))
        except ValueError:
            raise ValueError(f"candidate {entry!r} is not alpha:beta:gamma, e.g. 1.2:1.1:1.15"
                             ) from None
        if min(candidate) < 1:
            raise ValueError(f"candidate {entry!r}: alpha, beta and gamma must be >= 1")
        if candidate not in out:
            out.append(candidate)
    return out


# ------------------------------------------------------------------------------------------
# The base network and what a candidate makes of it


@dataclasses.dataclass(frozen=True)
class BaseNetwork:
    """The network the search scales: a preset's block table at these multipliers and size."""

    model: str  # canonical preset name, e.g. 'efficientnet-b0'
    width: float
    depth: float
    resolution: int
    small_images: bool = False
    classes: int = 1000

    @classmethod
    def of(cls, model: str, *, width: float | None = None, depth: float | None = None,
           resolution: int | None = None, small_images: bool = False,
           classes: int = 1000) -> BaseNetwork:
        """The preset `model` with the noisy-student overrides (None: the preset's own;
        resolution 32 with small_images, as the trainer does)."""
        from efficientnet_tf.architecture import PRESETS, canonical_name

        name = canonical_name(model)
        preset = PRESETS[name]
        if resolution is None:
            resolution = 32 if small_images else preset.resolution
        return cls(name, preset.width if width is None else float(width),
                   preset.depth if depth is None else float(depth), int(resolution),
                   bool(small_images), int(classes))

    def scaled(self, candidate: Candidate, phi: float = 1.0) -> tuple[float, float, int]:
        """(width, depth, resolution) of the base scaled by `candidate` at `phi`: the rule of
        `efficientnet_tf.compound_scaling`, which `create_model(phi=...)` uses."""
        from efficientnet_tf.architecture import compound_scaling

        return compound_scaling(phi, candidate.alpha, candidate.beta, candidate.gamma,
                                self.resolution, self.width, self.depth)

    def macs(self, width: float | None = None, depth: float | None = None,
             resolution: int | None = None) -> int:
        """Multiply-adds of one image through the base (or these multipliers and size)."""
        from efficientnet_tf.complexity import count_macs

        return count_macs(self.width if width is None else width,
                          self.depth if depth is None else depth,
                          self.resolution if resolution is None else resolution,
                          classes=self.classes, small_images=self.small_images)

    def create_model_call(self, candidate: Candidate, phi: float = 1.0) -> str:
        """The `efficientnet_tf.create_model` call that builds the scaled network."""
        args = [f"phi={phi:g}", f"alpha={candidate.alpha:g}", f"beta={candidate.beta:g}",
                f"gamma={candidate.gamma:g}", f"base_resolution={self.resolution}"]
        if self.width != 1.0:
            args.append(f"base_width={self.width:g}")
        if self.depth != 1.0:
            args.append(f"base_depth={self.depth:g}")
        if self.small_images:  # a small-images model is built at 32 px unless told
            resolution = self.scaled(candidate, phi)[2]
            args += ["small_images=True", f"input_shape=({resolution}, {resolution}, 3)"]
        args.append(f"classes={self.classes}")
        return f"create_model({', '.join(args)})"

    def trainer_flags(self, candidate: Candidate, phi: float = 1.0) -> str:
        """noisy-student flags that train the scaled network (as teacher or student)."""
        width, depth, resolution = self.scaled(candidate, phi)
        short = self.model.replace("efficientnet-", "")
        text = (f"--teacher_model={short} --width_coefficient={width:.6g} "
                f"--depth_coefficient={depth:.6g} --image_size={resolution}")
        return text + (" --small_images" if self.small_images else "")


# ------------------------------------------------------------------------------------------
# Ranking


def nas_objective(accuracy: float, flops: float, target_flops: float,
                  weight: float = NAS_WEIGHT) -> float:
    """ACC * (FLOPS / T)^w (MnasNet's soft constraint, as in the EfficientNet-B0 search)."""
    if flops <= 0 or target_flops <= 0:
        raise ValueError(f"FLOPs must be > 0, got {flops} and target {target_flops}")
    return accuracy * (flops / target_flops) ** weight


def rank_results(results: Sequence[dict], *, rank_by: str = "accuracy",
                 target_flops: float | None = None, weight: float = NAS_WEIGHT) -> list[dict]:
    """Copies of `results` (dicts with 'name', 'top1' (None when not scored), 'macs') best
    first, each with 'score' (top-1, or the NAS objective with --rank_by=nas) and 'rank'
    (1, 2, ...; None when not scored). Ties go to fewer MACs, then to the name. Every scored
    result also gets 'nas_objective' when `target_flops` is given."""
    if rank_by not in ("accuracy", "nas"):
        raise ValueError(f"rank_by must be 'accuracy' or 'nas', got {rank_by!r}")
    if rank_by == "nas" and not target_flops:
        raise ValueError("rank_by='nas' needs target_flops")
    scored, unscored = [], []
    for result in results:
        row = dict(result)
        if row.get("top1") is None:
            row.update(score=None, rank=None)
            unscored.append(row)
            continue
        if target_flops:
            row["nas_objective"] = nas_objective(row["top1"], row["macs"], target_flops, weight)
        row["score"] = row["nas_objective"] if rank_by == "nas" else row["top1"]
        scored.append(row)
    scored.sort(key=lambda row: (-row["score"], row["macs"], row["name"]))
    for rank, row in enumerate(scored, start=1):
        row["rank"] = rank
    return scored + unscored


# ------------------------------------------------------------------------------------------
# Reports


def _macs_unit(values: Sequence[float]) -> tuple[float, str]:
    return (1e9, "GMACs") if max(values, default=0) >= 1e9 else (1e6, "MMACs")


def format_table(rows: Sequence[dict], *, rank_by: str = "accuracy") -> str:
    """The ranked candidates as a fixed-width text table."""
    scale, unit = _macs_unit([row["macs"] for row in rows])
    header = ["rank", "alpha", "beta", "gamma", "a*b^2*g^2", "width", "depth", "res", unit,
              "x base", "top-1", "NAS obj", "status"]
    body = []
    for row in rows:
        top1, nas = row.get("top1"), row.get("nas_objective")
        body.append([
            str(row["rank"]) if row.get("rank") else "-",
            f"{row['alpha']:g}", f"{row['beta']:g}", f"{row['gamma']:g}",
            f"{row['multiplier']:.3f}", f"{row['width']:.4g}", f"{row['depth']:.4g}",
            str(row["resolution"]), f"{row['macs'] / scale:.2f}", f"{row['macs_ratio']:.2f}",
            f"{100 * top1:.2f}%" if top1 is not None else "-",
            f"{nas:.4f}" if nas is not None else "-", row["status"]])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    rule = "-" * len(line(header))
    by = "top-1" if rank_by == "accuracy" else "NAS objective ACC * (FLOPS/T)^w"
    return "\n".join([f"Ranked by {by}.", rule, line(header), rule, *map(line, body), rule])


def plot_results(rows: Sequence[dict], *, base_macs: float, target_macs: float,
                 rank_by: str = "accuracy"):
    """Top-1 against MACs, each candidate labelled with its coefficients, the winner starred
    and the target FLOPs marked; returns the figure (noisy_student.plots.write_png writes it)."""
    from noisy_student import plots

    done = [row for row in rows if row.get("top1") is not None]
    scale, unit = _macs_unit([base_macs, target_macs, *(row["macs"] for row in rows)])
    fig = plots.new_figure(7.5, 5.0)
    axes = fig.add_subplot(1, 1, 1)
    axes.axvline(target_macs / scale, color="0.6", linestyle="--",
                 label=f"target: base x {target_macs / base_macs:g}")
    if done:
        x = [row["macs"] / scale for row in done]
        y = [100 * row["top1"] for row in done]
        axes.scatter(x, y, color="tab:blue", zorder=3)
        # Labels alternate above and below in order of MACs, so that neighbours stay legible.
        order = sorted(range(len(done)), key=lambda i: (x[i], y[i]))
        for position, i in enumerate(order):
            row = done[i]
            axes.annotate(Candidate(row["alpha"], row["beta"], row["gamma"]).label, (x[i], y[i]),
                          textcoords="offset points", xytext=(4, 5 if position % 2 else -11),
                          fontsize=7)
        best = done[0]
        axes.scatter([best["macs"] / scale], [100 * best["top1"]], marker="*", s=250,
                     color="tab:red", zorder=4, label=f"best by {rank_by}: {best['name']}")
    else:
        axes.text(0.5, 0.5, "no candidate scored yet", transform=axes.transAxes, ha="center")
    axes.set_xlabel(f"{unit} per image")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title("Compound-scaling grid search (phi = 1)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return fig


def step2_text(base: BaseNetwork, best: Candidate | None, phis: Sequence[float]) -> str:
    """How to use the winner (the paper's step 2): the create_model call and the noisy-student
    flags for each phi, with the scaled sizes and MACs."""
    if best is None:
        return "Step 2: no candidate has been scored yet."
    lines = [f"Step 2: scale the base with the winner (alpha={best.alpha:g}, beta={best.beta:g}, "
             f"gamma={best.gamma:g}):",
             "    from efficientnet_tf import create_model"]
    base_macs = base.macs()
    for phi in phis:
        width, depth, resolution = base.scaled(best, phi)
        macs = base.macs(width, depth, resolution)
        lines += [f"  phi={phi:g}: width {width:.4g}, depth {depth:.4g}, {resolution} px, "
                  f"{macs / base_macs:.2f}x the base's MACs",
                  f"    model = {base.create_model_call(best, phi)}",
                  f"    noisy-student {base.trainer_flags(best, phi)} ..."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# The search


@dataclasses.dataclass
class SearchOptions:
    """What the search does besides the training recipe (a noisy_student.config.RunConfig)."""

    output_dir: str
    base_model: str | None = None  # default: the recipe's teacher_model
    candidates: Sequence[Candidate] | None = None  # default: the grid
    target_multiplier: float = 2.0
    tolerance: float = 0.05
    grid_step: float = 0.05
    rank_by: str = "accuracy"
    nas_weight: float = NAS_WEIGHT
    phis: Sequence[float] = (1.0, 2.0, 3.0)


def base_network(recipe, base_model: str | None = None) -> BaseNetwork:
    """The base network of a noisy-student RunConfig (its teacher model and overrides)."""
    return BaseNetwork.of(base_model or recipe.teacher_model, width=recipe.width_coefficient,
                          depth=recipe.depth_coefficient, resolution=recipe.image_size,
                          small_images=recipe.small_images, classes=recipe.num_classes)


def candidate_list(options: SearchOptions) -> list[Candidate]:
    if options.candidates:
        return list(options.candidates)
    found = grid_candidates(options.target_multiplier, options.tolerance, options.grid_step)
    if not found:
        raise ValueError(
            f"no grid point (step {options.grid_step:g}) has alpha*beta^2*gamma^2 within "
            f"{options.tolerance:g} of {options.target_multiplier:g}; raise --tolerance or "
            "lower --grid_step")
    return found


def describe(base: BaseNetwork, candidate: Candidate) -> dict:
    """A candidate's row before training: coefficients, scaled network, MACs."""
    width, depth, resolution = base.scaled(candidate)
    macs = base.macs(width, depth, resolution)
    return {"name": candidate.name, "alpha": candidate.alpha, "beta": candidate.beta,
            "gamma": candidate.gamma, "multiplier": candidate.multiplier, "width": width,
            "depth": depth, "resolution": resolution, "macs": macs,
            "macs_ratio": macs / base.macs(), "status": "pending", "top1": None}


def candidate_config(recipe, base: BaseNetwork, candidate: Candidate, run_dir: str):
    """The noisy-student RunConfig that trains `candidate` as the teacher of `run_dir`."""
    width, depth, resolution = base.scaled(candidate)
    return dataclasses.replace(
        recipe, run_dir=run_dir, teacher_model=base.model, teacher_checkpoint=None,
        student_models=[base.model], width_coefficient=width, depth_coefficient=depth,
        image_size=resolution, small_images=base.small_images, num_classes=base.classes)


def search(recipe, options: SearchOptions, *,
           progress: Callable[[str], None] = lambda message: None, strategy=None) -> dict:
    """Trains and scores every candidate not finished before (in `options.output_dir`), then
    writes the JSON, table and PNG; returns what the JSON holds.

    `recipe` is a noisy_student.config.RunConfig (its run_dir is ignored): each candidate is a
    run directory under output_dir/candidates whose teacher stage is the candidate.
    """
    import keras

    from noisy_student.atomic_io import remove_stale_temps
    from noisy_student.run.lock import run_dir_lock
    from noisy_student.run.workers import worker_info
    from noisy_student.training import is_chief, make_strategy

    if not recipe.eval_data:
        raise ValueError("the search scores each candidate on --eval_data; give it")
    base = base_network(recipe, options.base_model)
    candidates = candidate_list(options)
    rows = {c.name: describe(base, c) for c in candidates}
    strategy = strategy or make_strategy(recipe.strategy, recipe.tpu)
    chief = is_chief(strategy)
    worker = worker_info(recipe.worker_index, recipe.num_workers)
    output_dir = options.output_dir
    progress(f"Base {base.model}: width {base.width:g}, depth {base.depth:g}, "
             f"{base.resolution} px, {base.macs() / 1e6:.2f} MMACs; {len(candidates)} "
             f"candidates, {recipe.train_epochs:g} epochs each, in {output_dir}")
    with run_dir_lock(output_dir, worker.index):
        if chief:
            remove_stale_temps(output_dir, recursive=False)
        for index, candidate in enumerate(candidates, start=1):
            prefix = f"[{index}/{len(candidates)}] {candidate.name}"
            run_dir = os.path.join(output_dir, CANDIDATES_DIR, candidate.name)
            config = candidate_config(recipe, base, candidate, run_dir)
            fields = train_candidate(config, strategy, worker.index, rows[candidate.name],
                                      prefix, progress)
            fields["run_dir"] = os.path.relpath(run_dir, output_dir)
            rows[candidate.name].update(fields)
            keras.backend.clear_session()
            if chief:
                write_results(output_dir, base, list(rows.values()), options)
    results = results_document(base, list(rows.values()), options)
    progress(f"Wrote {os.path.join(output_dir, RESULTS_JSON)}, {RESULTS_TABLE} and "
             f"{RESULTS_PNG}")
    return results


def train_candidate(config, strategy, worker_index: int, row: dict, prefix: str,
                     progress: Callable[[str], None]) -> dict:
    """Trains and evaluates one candidate through noisy_student.pipeline.loop, as `noisy-student
    --mode=teacher` and `--mode=eval --iteration=0` would (finished stages are skipped, a started
    training resumes from its last checkpoint); returns the row's new fields."""
    import tensorflow as tf

    from noisy_student.atomic_io import read_json, write_json_atomic
    from noisy_student.pipeline import stages
    from noisy_student.pipeline.loop import Run
    from noisy_student.run.directory import stage_settings
    from noisy_student.run.layout import parse_stage
    from noisy_student.run.lock import run_dir_lock

    teacher, teacher_eval = parse_stage("teacher"), parse_stage("teacher/eval")
    with run_dir_lock(config.run_dir, worker_index):
        run = Run(config, strategy)
        run.prepare()  # stale temps removed, recorded settings checked (as --mode=teacher)
        run_dir, settings = run.context.run_dir, stage_settings(config, teacher)
        diverged_path = os.path.join(config.run_dir, DIVERGED)
        diverged = read_json(diverged_path)
        if diverged and diverged.get("settings") == settings:
            progress(f"{prefix}: diverged earlier ({diverged['error']}); skipped (delete "
                     f"{config.run_dir} to retry)")
            return {"status": "diverged", "error": diverged["error"]}
        finished = run_dir.done(teacher) and run_dir.done(teacher_eval)
        if finished:
            progress(f"{prefix}: finished earlier (top-1 "
                     f"{100 * run_dir.result(teacher_eval)['top1']:.2f}%); not retrained")
        elif run_dir.done(teacher):
            progress(f"{prefix}: trained earlier; evaluating")
        else:
            checkpoint = tf.train.latest_checkpoint(stages.model_dir(run.context, 0))
            resuming = f" (resuming from {os.path.basename(checkpoint)})" if checkpoint else ""
            progress(f"{prefix}: width {row['width']:.4g}, depth {row['depth']:.4g}, "
                     f"{row['resolution']} px, {row['macs_ratio']:.2f}x the base's MACs; "
                     f"training{resuming}")
        start = time.time()
        try:
            trained = run.run_stage(teacher)
        except FloatingPointError as err:  # NonFiniteLossError: a diverged candidate
            if run.chief:
                write_json_atomic(diverged_path, {"error": str(err), "settings": settings})
            progress(f"{prefix}: diverged ({err}); recorded, the search goes on")
            return {"status": "diverged", "error": str(err)}
        scored = run.run_stage(teacher_eval)
    if not finished:
        progress(f"{prefix}: top-1 {100 * scored['top1']:.2f}% on "
                 f"{scored.get('num_examples')} images ({time.time() - start:.0f} s)")
    return {"status": "done", "top1": scored["top1"], "top5": scored.get("top5"),
            "num_examples": scored.get("num_examples"), "steps": trained.get("steps"),
            "train_seconds": trained.get("seconds"), "eval_seconds": scored.get("seconds"),
            "resumed_from_step": trained.get("resumed_from_step", 0),
            "clean_train_top1": trained.get("clean_train_top1")}


def results_document(base: BaseNetwork, rows: list[dict], options: SearchOptions) -> dict:
    """What scaling_search.json holds: the settings, the ranked candidates, the winner and
    step 2."""
    base_macs = base.macs()
    target_macs = base_macs * options.target_multiplier
    ranked = rank_results(rows, rank_by=options.rank_by, target_flops=target_macs,
                          weight=options.nas_weight)
    best = ranked[0] if ranked and ranked[0].get("rank") == 1 else None
    winner = Candidate(best["alpha"], best["beta"], best["gamma"]) if best else None
    scale_up = []
    if winner:
        for phi in options.phis:
            width, depth, resolution = base.scaled(winner, phi)
            scale_up.append({"phi": phi, "width": width, "depth": depth,
                             "resolution": resolution,
                             "macs": base.macs(width, depth, resolution),
                             "create_model": base.create_model_call(winner, phi),
                             "noisy_student_flags": base.trainer_flags(winner, phi)})
    return {
        "base": {**dataclasses.asdict(base), "macs": base_macs},
        "target_multiplier": options.target_multiplier,
        "target_macs": target_macs,
        "tolerance": options.tolerance,
        "grid_step": None if options.candidates else options.grid_step,
        "rank_by": options.rank_by,
        "nas_weight": options.nas_weight,
        "candidates": ranked,
        "best": best,
        "scale_up": scale_up,
    }


def write_results(output_dir: str, base: BaseNetwork, rows: list[dict],
                  options: SearchOptions) -> dict:
    """Writes scaling_search.json, .txt and .png (each atomically); returns the document."""
    from noisy_student import plots
    from noisy_student.atomic_io import write_json_atomic, write_text_atomic

    document = results_document(base, rows, options)
    ranked = document["candidates"]
    best = document["best"]
    winner = Candidate(best["alpha"], best["beta"], best["gamma"]) if best else None
    text = "\n\n".join([format_table(ranked, rank_by=options.rank_by),
                        step2_text(base, winner, options.phis)]) + "\n"
    write_json_atomic(os.path.join(output_dir, RESULTS_JSON), document)
    write_text_atomic(os.path.join(output_dir, RESULTS_TABLE), text)
    fig = plot_results(ranked, base_macs=document["base"]["macs"],
                       target_macs=document["target_macs"], rank_by=options.rank_by)
    plots.write_png(fig, os.path.join(output_dir, RESULTS_PNG))
    return document


# ------------------------------------------------------------------------------------------
# Command line


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
