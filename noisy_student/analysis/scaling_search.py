"""The compound-scaling search over whole runs: each candidate of
``noisy_student.analysis.scaling_grid`` is trained as the teacher of its own noisy-student run
directory (``noisy_student.pipeline``, resumable, a diverged candidate recorded and skipped),
scored on the evaluation data, ranked, and written as scaling_search.json, .txt (the table and
step 2) and .png (top-1 against MACs). ``noisy-student-scaling-search``
(``noisy_student.cli.scaling_search``) is its command line.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

from noisy_student.analysis.scaling_grid import (
    NAS_WEIGHT,
    BaseNetwork,
    Candidate,
    grid_candidates,
    rank_results,
)

RESULTS_JSON = "scaling_search.json"
RESULTS_TABLE = "scaling_search.txt"
RESULTS_PNG = "scaling_search.png"
CANDIDATES_DIR = "candidates"
DIVERGED = "diverged.json"


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
