"""Paired comparisons over seeds: mean +- standard deviation, and each arm's per-seed difference
to a reference arm with a two-sided 95% t-interval. Pure Python (no SciPy)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

# Two-sided 95% quantiles of Student's t (0.975 quantile) by degrees of freedom; beyond the
# table the normal quantile is within 2% of the truth.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (conservative between
    tabulated values: the next smaller df's)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    known = [d for d in sorted(T_975) if d <= df]
    return T_975[known[-1]] if df <= max(T_975) else 1.96


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def paired_difference(arm: Mapping[int, float], reference: Mapping[int, float]) -> dict | None:
    """`arm` - `reference` on the seeds both have: n, mean, sd, 95% t-interval (None with fewer
    than two seeds) and whether the interval excludes zero."""
    seeds = sorted(set(arm) & set(reference))
    if not seeds:
        return None
    differences = [arm[s] - reference[s] for s in seeds]
    mean, sd = mean_sd(differences)
    result = {"seeds": seeds, "n": len(seeds), "mean": mean, "sd": sd, "low": None,
              "high": None, "excludes_zero": None, "seeds_to_exclude_zero": None}
    if len(seeds) > 1:
        half = t_quantile(len(seeds) - 1) * sd / math.sqrt(len(seeds))
        result.update(low=mean - half, high=mean + half,
                      excludes_zero=bool(mean - half > 0 or mean + half < 0),
                      seeds_to_exclude_zero=seeds_needed(mean, sd))
    return result


def seeds_needed(mean: float, sd: float, most: int = 30) -> int | None:
    """The fewest seeds whose 95% t-interval would exclude zero if the differences kept this
    mean and standard deviation (a planning figure, as uncertain as `sd` itself); None
    beyond `most`."""
    for n in range(2, most + 1):
        if t_quantile(n - 1) * sd / math.sqrt(n) < abs(mean):
            return n
    return None
