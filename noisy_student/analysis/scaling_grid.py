"""Compound-scaling candidates and how to rank them: the (alpha, beta, gamma) grid around a FLOPs
multiplier (alpha * beta^2 * gamma^2, step 1 of the EfficientNet paper), the base network and
what a candidate makes of it (scaled width, depth, resolution, multiply-adds, the
``create_model`` call and noisy-student flags of step 2), and the accuracy or NAS objective
(ACC * (FLOPS / T)^w). No training and no TensorFlow: ``noisy_student.analysis.scaling_search``
trains the candidates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

NAS_WEIGHT = -0.07  # MnasNet / EfficientNet-B0 search: ACC * (FLOPS / T)^w
_EPSILON = 1e-9  # products are compared with this slack, so grid values on the bound count


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
