"""Which variant weights belong to, and the model to load them into.

A model built by efficientnet_tf records its variant (`network.architecture_of`), so loading
published weights reads it. Only two cases still infer a variant: weight *sources* that do not
name one (a keras.applications weights-only file, a checkpoint scope), from their names or
shapes; and models saved before models recorded their variant (clearly marked legacy below).
"""

from __future__ import annotations

import re
from typing import Any

import keras

from efficientnet_tf.architecture import (
    PRESETS,
    builder_arguments,
    canonical_name,
    preset_signature,
)
from efficientnet_tf.blocks import MBConvBlock
from efficientnet_tf.network import EfficientNetModel, architecture_of, build_network
from efficientnet_tf.weights.targets import model_targets


def preset_from_text(text: str | None) -> str | None:
    """'efficientnetb3_notop.h5', 'efficientnet-b3' -> 'efficientnet-b3'."""
    if not text:
        return None
    match = re.search(r"efficientnet[-_]?(b\d|l2)", text.lower())
    return f"efficientnet-{match.group(1)}" if match else None


def infer_preset(stem: int, head: int, blocks: int, description: str) -> str:
    """The preset with these stem/head filters and block count; ValueError if none."""
    signature = (stem, head, blocks)
    for name in PRESETS:
        if preset_signature(name) == signature:
            return name
    raise ValueError(
        f"{description}: stem {stem} / head {head} filters and {blocks} blocks match no preset "
        f"({', '.join(PRESETS)}); pass variant=... or the scaling coefficients explicitly."
    )


def build_for_source(create_kwargs: dict[str, Any], inferred: dict[str, Any]) -> EfficientNetModel:
    """The model for a weights source, with random weights: `create_model` arguments inferred
    from the source, overridden by the caller's `create_kwargs`."""
    kwargs = {**inferred, **create_kwargs}
    kwargs.pop("weights", None)
    if "width_coefficient" in kwargs and "variant" not in create_kwargs:
        kwargs.pop("variant", None)
        return build_network(**kwargs)
    if "phi" in kwargs:
        kwargs.pop("variant", None)
    config, _ = builder_arguments(**kwargs)
    return build_network(**config)


def model_preset(model: keras.Model, preset: str | None = None) -> str:
    """The preset whose published weights fit `model`: the one named (the '<preset>' of
    'imagenet:<preset>'), else the one the model records.

    Raises:
        ValueError: the model records a custom variant, which has no published weights.
    """
    if preset:
        return canonical_name(preset)
    architecture = architecture_of(model)
    if architecture is None:
        return legacy_preset_from_shapes(model)
    if architecture.preset is None:
        raise ValueError(
            f"Model {model.name!r} is a custom variant (width {architecture.width_coefficient}, "
            f"depth {architecture.depth_coefficient}), which has no published weights; name the "
            "preset whose weights to load, e.g. 'imagenet:efficientnet-b0'."
        )
    return architecture.preset


def legacy_preset_from_shapes(model: keras.Model) -> str:
    """LEGACY, only for models that record no variant (saved before models recorded it): the
    preset whose stem/head filters and block count match the model's."""
    targets = {t.path: t.layer for t in model_targets(model)}
    blocks = sum(1 for layer in model.layers if isinstance(layer, MBConvBlock))
    return infer_preset(
        targets["stem_conv"].weights[0].shape[-1],
        targets["top_conv"].weights[0].shape[-1],
        blocks,
        f"model {model.name!r} (saved before models recorded their variant)",
    )
