"""The layer targets of weight loading: an efficientnet_tf model's weighted layers by path
('block2a/se/reduce'), with the checks every source shares. Loading is strict: a missing, extra
or differently shaped variable raises an error naming the layer and both shapes, and nothing is
set until every layer was checked."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from efficientnet_tf.blocks import InputNormalization, MBConvBlock

# Sublayers of our MBConvBlock in weight-loading order, with the keras.applications suffix.
BLOCK_SUBLAYERS = (
    ("expand_conv", "expand_conv"),
    ("expand_bn", "expand_bn"),
    ("dwconv", "dwconv"),
    ("bn", "bn"),
    ("se/reduce", "se_reduce"),
    ("se/expand", "se_expand"),
    ("project_conv", "project_conv"),
    ("project_bn", "project_bn"),
)
_TOP_LEVEL = ("stem_conv", "stem_bn", "top_conv", "top_bn", "predictions")


@dataclasses.dataclass(frozen=True)
class Target:
    """One weighted Keras layer of our model, by its path ('block2a/se/reduce')."""

    path: str
    layer: keras.layers.Layer
    block_index: int | None = None  # global MBConv index (the reference's blocks_i)
    expands: bool = False  # the block has an expansion conv (expand_ratio != 1)


def model_targets(model: keras.Model) -> list[Target]:
    """Weighted layers of an efficientnet_tf model in build order."""
    targets: list[Target] = []
    block_index = 0
    for layer in model.layers:
        if isinstance(layer, MBConvBlock):
            expands = layer.expand_ratio != 1
            for path, _ in BLOCK_SUBLAYERS:
                sub = _sublayer(layer, path)
                if sub is not None:
                    targets.append(Target(f"{layer.name}/{path}", sub, block_index, expands))
            block_index += 1
        elif layer.name in _TOP_LEVEL:
            targets.append(Target(layer.name, layer))
    if not any(t.path == "stem_conv" for t in targets) or block_index == 0:
        raise ValueError(
            f"Model {model.name!r} is not an efficientnet_tf EfficientNet (no 'stem_conv' layer or "
            "MBConv blocks); build it with efficientnet_tf.create_model or EfficientNetB0..L2."
        )
    return targets


def _sublayer(block: MBConvBlock, path: str) -> keras.layers.Layer | None:
    layer: Any = block
    for part in path.split("/"):
        layer = getattr(layer, part, None)
        if layer is None:
            return None
    return layer


def has_top(model: keras.Model) -> bool:
    """True when the model has the classifier ('predictions')."""
    return any(layer.name == "predictions" for layer in model.layers)


def normalization_layer(model: keras.Model) -> InputNormalization | None:
    """The model's input normalization layer (None with include_preprocessing=False)."""
    for layer in model.layers:
        if isinstance(layer, InputNormalization):
            return layer
    return None


def assign(
    target: Target, arrays: Sequence[np.ndarray], names: Sequence[str], source: str
) -> list[np.ndarray]:
    """Checks count and shapes of `arrays` against the layer's variables; returns them."""
    variables = target.layer.weights
    if len(arrays) != len(variables):
        raise ValueError(
            f"{source}: layer '{target.path}' has {len(variables)} variables but the source has "
            f"{len(arrays)} ({', '.join(names)})."
        )
    values = []
    for variable, array, name in zip(variables, arrays, names, strict=True):
        array = np.asarray(array)
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(
                f"{source}: '{name}' has shape {tuple(array.shape)} but model layer "
                f"'{target.path}' variable '{variable.name}' has shape {tuple(variable.shape)}. "
                "The weights belong to another variant or number of classes: build the matching "
                "variant, or pass include_top=False to drop the classifier."
            )
        values.append(array.astype(variable.dtype))
    return values


def set_all(assignments: list[tuple[Target, list[np.ndarray]]]) -> None:
    """Sets weights only after every layer was checked, so a failed load changes nothing."""
    for target, values in assignments:
        target.layer.set_weights(values)
