"""Compound scaling: the B0-B8/L2 preset table, phi -> coefficients, filter and repeat rounding.

All numbers are the reference's (EfficientNet paper and tensorflow/tpu `efficientnet_builder`).
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Preset(NamedTuple):
    """Scaling coefficients of one published variant."""

    width: float
    depth: float
    resolution: int
    dropout: float


PRESETS: dict[str, Preset] = {
    "efficientnet-b0": Preset(1.0, 1.0, 224, 0.2),
    "efficientnet-b1": Preset(1.0, 1.1, 240, 0.2),
    "efficientnet-b2": Preset(1.1, 1.2, 260, 0.3),
    "efficientnet-b3": Preset(1.2, 1.4, 300, 0.3),
    "efficientnet-b4": Preset(1.4, 1.8, 380, 0.4),
    "efficientnet-b5": Preset(1.6, 2.2, 456, 0.4),
    "efficientnet-b6": Preset(1.8, 2.6, 528, 0.5),
    "efficientnet-b7": Preset(2.0, 3.1, 600, 0.5),
    "efficientnet-b8": Preset(2.2, 3.6, 672, 0.5),
    "efficientnet-l2": Preset(4.3, 5.3, 800, 0.5),
}

# Coefficients found by the grid search on B0 (EfficientNet paper, section 3.3).
DEFAULT_ALPHA = 1.2  # depth
DEFAULT_BETA = 1.1  # width
DEFAULT_GAMMA = 1.15  # resolution


def canonical_name(name: str) -> str:
    """Maps 'b3', 'B3', 'efficientnetb3' or 'efficientnet-b3' to 'efficientnet-b3'.

    Raises:
        ValueError: the name is not a preset; the message lists the valid names.
    """
    key = name.strip().lower().replace("_", "-")
    if key.startswith("efficientnet"):
        key = key[len("efficientnet") :].lstrip("-")
    full = f"efficientnet-{key}"
    if full not in PRESETS:
        valid = ", ".join(PRESETS) + " (or the short forms b0..b8, l2)"
        raise ValueError(f"Unknown EfficientNet variant {name!r}. Valid names: {valid}.")
    return full


def compound_scaling(
    phi: float,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    gamma: float = DEFAULT_GAMMA,
    base_resolution: int = 224,
) -> tuple[float, float, int]:
    """Returns (width, depth, resolution) for compound coefficient `phi`.

    depth = alpha**phi, width = beta**phi, resolution = base_resolution * gamma**phi (rounded to
    the nearest integer). The paper constrains alpha * beta**2 * gamma**2 ~ 2, so FLOPs grow by
    about 2**phi.
    """
    for label, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if value < 1.0:
            raise ValueError(f"{label} must be >= 1 (got {value}); scaling only grows the model.")
    width = beta**phi
    depth = alpha**phi
    resolution = int(round(base_resolution * gamma**phi))
    return width, depth, resolution


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales a channel count by `width`, to the nearest multiple of `divisor` (at least
    `divisor`), adding one `divisor` when rounding down lost more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scales the number of blocks of a stage by `depth`, rounding up."""
    return int(math.ceil(depth * repeats))
