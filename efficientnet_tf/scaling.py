"""Compound scaling names, kept importable from here; they live in `efficientnet_tf.architecture`
(the one home of presets, scaling rules and the block table)."""

from efficientnet_tf.architecture import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_GAMMA,
    PRESETS,
    Preset,
    canonical_name,
    compound_scaling,
    round_filters,
    round_repeats,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_BETA",
    "DEFAULT_GAMMA",
    "PRESETS",
    "Preset",
    "canonical_name",
    "compound_scaling",
    "round_filters",
    "round_repeats",
]
