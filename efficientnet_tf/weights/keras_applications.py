"""keras.applications weights: a model object, its legacy Keras 2 `.h5` (as published at
storage.googleapis.com/keras-applications), a Keras 3 `.weights.h5` or a `.keras` file. Layer
names such as `block2a_expand_conv` become our nested `block2a` / `expand_conv`.

Input normalization: our model normalizes with constants, (x/255 - mean) / std. keras.applications
has Rescaling(1/255) -> Normalization(mean, variance) and, only when built with
weights='imagenet', an extra per-channel Rescaling(1/sqrt(std)) because its published files store
the ImageNet *std* in the `variance` slot (tensorflow/tensorflow#49930). A randomly initialized
keras model (weights=None) has mean 0, variance 1 and no extra rescaling, so it computes x/255.
We convert whatever the source computes into an exact (mean, std) pair: from the layers when the
source is a model or a full-model .h5, and for weights-only files by the rule "variance equal to
the ImageNet std means the published quirk" (otherwise std = sqrt(variance)).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import keras
import numpy as np

from efficientnet_tf.blocks import IMAGENET_STD
from efficientnet_tf.weights.targets import (
    BLOCK_SUBLAYERS,
    Target,
    assign,
    has_top,
    model_targets,
    normalization_layer,
    set_all,
)
from efficientnet_tf.weights.variants import build_for_source, infer_preset, preset_from_text

_KERAS_APPS_BLOCK = re.compile(r"^block\d+[a-z]+_dwconv$")
_NORMALIZATION_NAME = re.compile(r"^normalization(_\d+)?$")


@dataclasses.dataclass
class KerasSource:
    """Weights of a keras.applications EfficientNet, by Keras layer name, plus what is known
    about the model around them (None: unknown, e.g. for a weights-only file)."""

    description: str
    arrays: dict[str, list[np.ndarray]]
    model_name: str | None = None
    input_shape: tuple[int | None, ...] | None = None
    classifier_activation: str | None = "softmax"
    pooling: str | None = None
    dropout_rate: float | None = None
    pre_scale: float | None = None  # Rescaling before Normalization (1/255 in keras-apps)
    post_scale: np.ndarray | None = None  # per-channel Rescaling after it (the #49930 fix)
    layer_configs: list[tuple[str, dict]] = dataclasses.field(default_factory=list)

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """(mean, std) in 0..1 units such that the source computes (x/255 - mean) / std."""
        if "normalization" not in self.arrays:
            return None
        mean, variance = (
            np.asarray(a, np.float64).reshape(-1) for a in self.arrays["normalization"][:2]
        )
        pre = 1.0 / 255.0 if self.pre_scale is None else float(self.pre_scale)
        if self.post_scale is not None:
            post = np.asarray(self.post_scale, np.float64).reshape(-1)
        elif np.allclose(variance, IMAGENET_STD, rtol=0, atol=1e-6):
            # Published weights-only files: 'variance' holds the std, and keras.applications
            # adds Rescaling(1/sqrt(std)) when it loads them.
            post = 1.0 / np.sqrt(np.asarray(IMAGENET_STD))
        else:
            post = np.ones_like(variance)
        mean_01 = mean / (255.0 * pre)
        std_01 = np.sqrt(variance) / (post * 255.0 * pre)
        return tuple(float(m) for m in mean_01), tuple(float(s) for s in std_01)


def _keras_name(target: Target) -> str:
    if target.block_index is None:
        return target.path
    block, _, sub = target.path.partition("/")
    suffix = dict(BLOCK_SUBLAYERS)[sub]
    return f"{block}_{suffix}"


def load_keras_applications_arrays(
    model: keras.Model, source: KerasSource, check_normalization: bool = True
) -> None:
    """Copies keras.applications weights (by layer name) into an efficientnet_tf model.

    Raises ValueError on the first missing, extra or differently shaped layer, and when the
    source's input normalization differs from the model's (`check_normalization`).
    """
    arrays = source.arrays
    include_top = has_top(model)
    if include_top and "predictions" not in arrays:
        raise ValueError(
            f"{source.description} has no classifier ('predictions' layer; a _notop file?): "
            "build the model with include_top=False."
        )
    assignments = []
    used = {"normalization"}
    for target in model_targets(model):
        name = _keras_name(target)
        if name not in arrays:
            raise ValueError(
                f"{source.description} has no layer '{name}' for model layer '{target.path}': "
                "the weights belong to another variant (or are not keras.applications weights)."
            )
        used.add(name)
        names = [f"{name}[{i}]" for i in range(len(arrays[name]))]
        assignments.append((target, assign(target, arrays[name], names, source.description)))
    if not include_top:
        used.add("predictions")
    unused = [name for name in arrays if name not in used and len(arrays[name])]
    if unused:
        raise ValueError(
            f"{source.description} has {len(unused)} weighted layers that the model lacks, first "
            f"'{unused[0]}': the weights belong to a deeper or different variant."
        )
    if check_normalization:
        _check_normalization(model, source)
    set_all(assignments)


def _check_normalization(model: keras.Model, source: KerasSource) -> None:
    layer = normalization_layer(model)
    stats = source.normalization()
    if layer is None or stats is None:
        return  # include_preprocessing=False: the caller normalizes; nothing to compare
    mean, std = stats
    if not (
        np.allclose(layer.mean, mean, rtol=1e-5, atol=1e-7)
        and np.allclose(layer.std, std, rtol=1e-5, atol=1e-7)
    ):
        rounded = ([round(m, 6) for m in mean], [round(s, 6) for s in std])
        raise ValueError(
            f"{source.description} was trained with input normalization mean={rounded[0]}, "
            f"std={rounded[1]} (0..1 units) but the model uses mean={list(layer.mean)}, "
            f"std={list(layer.std)}. Use efficientnet_tf.weights.from_keras_applications, or "
            f"build the model with normalization_mean={rounded[0]}, "
            f"normalization_std={rounded[1]}."
        )


def _summarize_layers(source: KerasSource) -> None:
    """Fills input shape, head and rescaling facts from (class_name, config) pairs."""
    seen_normalization = False
    for class_name, config in source.layer_configs:
        name = config.get("name", "")
        if class_name == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            if shape:
                source.input_shape = tuple(shape[1:])
        elif class_name == "Rescaling":
            if float(np.sum(np.abs(config.get("offset", 0.0)))) != 0.0:
                raise ValueError(
                    f"{source.description}: Rescaling with an offset is not supported."
                )
            scale = np.asarray(config.get("scale", 1.0), np.float64).reshape(-1)
            if not seen_normalization:
                source.pre_scale = float(scale[0])
            else:
                source.post_scale = scale
        elif class_name == "Normalization":
            seen_normalization = True
            if source.post_scale is None:
                source.post_scale = np.ones(1)
        elif name == "predictions":
            activation = config.get("activation", "softmax")
            source.classifier_activation = None if activation in (None, "linear") else activation
        elif name == "avg_pool":
            source.pooling = "avg"
        elif name == "max_pool":
            source.pooling = "max"
        elif name == "top_dropout":
            source.dropout_rate = float(config["rate"])


def _source_from_model(model: keras.Model) -> KerasSource:
    arrays = {
        "normalization" if isinstance(layer, keras.layers.Normalization) else layer.name: [
            np.asarray(w) for w in layer.weights
        ]
        for layer in model.layers
        if layer.weights
    }
    source = KerasSource(
        description=f"keras model {model.name!r}",
        arrays=arrays,
        model_name=model.name,
        layer_configs=[(type(layer).__name__, layer.get_config()) for layer in model.layers],
    )
    _summarize_layers(source)
    source.input_shape = tuple(model.input_shape[1:])
    return source


def read_keras_file(path: str) -> KerasSource:
    """Reads keras.applications weights from a legacy Keras 2 `.h5` (weights-only or full
    model) or a Keras 3 `.weights.h5`; `.keras` files are loaded as models."""
    if path.endswith(".keras"):
        return _source_from_model(keras.models.load_model(path, compile=False))
    import h5py  # a Keras dependency

    base = os.path.basename(path)
    source = KerasSource(description=f"weights file {path}", arrays={}, model_name=base)
    with h5py.File(path, "r") as handle:
        if "layers" in handle and "layer_names" not in handle.attrs:
            source.arrays = _rename_normalization(_read_keras3_h5(handle, path))
        else:
            group = handle["model_weights"] if "model_weights" in handle else handle
            source.arrays = _rename_normalization(_read_legacy_h5(group, path))
            if "model_config" in handle.attrs:
                config = json.loads(_text(handle.attrs["model_config"]))
                source.model_name = config["config"].get("name", base)
                source.layer_configs = [
                    (entry["class_name"], {"name": entry.get("name"), **entry["config"]})
                    for entry in config["config"]["layers"]
                ]
                _summarize_layers(source)
    return source


def _rename_normalization(arrays: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """Keras numbers layer names per session ('normalization_1'); ours is 'normalization'."""
    found = [name for name in arrays if _NORMALIZATION_NAME.match(name)]
    if len(found) == 1:
        arrays["normalization"] = arrays.pop(found[0])
    return arrays


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_legacy_h5(group, path: str) -> dict[str, list[np.ndarray]]:
    if "layer_names" not in group.attrs:
        raise ValueError(f"{path} is neither a Keras .h5 weights file nor a .weights.h5 file.")
    arrays = {}
    for layer_name in (_text(n) for n in group.attrs["layer_names"]):
        layer_group = group[layer_name]
        names = [_text(n) for n in layer_group.attrs.get("weight_names", [])]
        arrays[layer_name] = [np.asarray(layer_group[n]) for n in names]
    return arrays


def _read_keras3_h5(handle, path: str) -> dict[str, list[np.ndarray]]:
    arrays = {}
    for key, group in handle["layers"].items():
        if "vars" not in group or not len(group["vars"]):
            continue
        name = group["vars"].attrs.get("name")
        if name is None:
            raise ValueError(
                f"{path}: layer group '{key}' carries no layer name (written by an older Keras). "
                "Load the file into keras.applications.EfficientNetBx(weights=None) and pass "
                "that model to from_keras_applications instead."
            )
        variables = group["vars"]
        arrays[_text(name)] = [np.asarray(variables[k]) for k in sorted(variables, key=int)]
    return arrays


def is_keras_applications_file(path: str) -> bool:
    """True for an .h5 / .weights.h5 file with keras.applications EfficientNet layer names."""
    if not path.endswith(".h5"):
        return False
    try:
        source = read_keras_file(path)
    except (ValueError, KeyError, OSError):
        return False
    return any(_KERAS_APPS_BLOCK.match(name) for name in source.arrays)


def from_keras_applications(
    source: keras.Model | str | os.PathLike, **create_kwargs
) -> keras.Model:
    """Builds the matching efficientnet_tf model and copies the weights of a keras.applications
    EfficientNetB0..B7 (model object, legacy `.h5`, Keras 3 `.weights.h5` or `.keras` file).

    The variant, input shape, include_top, classes, pooling, classifier activation and input
    normalization are taken from the source; `create_kwargs` (any `create_model` argument,
    e.g. variant='b3', input_shape=(225, 225, 3)) override them.
    """
    if isinstance(source, keras.Model):
        keras_source = _source_from_model(source)
    else:
        keras_source = read_keras_file(os.fspath(source))
    arrays = keras_source.arrays
    for required in ("stem_conv", "top_conv"):
        if required not in arrays:
            raise ValueError(
                f"{keras_source.description} is not a keras.applications EfficientNet "
                f"(no '{required}' layer)."
            )
    inferred: dict[str, Any] = {}
    if not {"variant", "name", "phi", "width_coefficient"} & create_kwargs.keys():
        preset = preset_from_text(keras_source.model_name)
        if preset is None:
            blocks = sum(1 for name in arrays if _KERAS_APPS_BLOCK.match(name))
            preset = infer_preset(
                arrays["stem_conv"][0].shape[-1],
                arrays["top_conv"][0].shape[-1],
                blocks,
                keras_source.description,
            )
        inferred["variant"] = preset
    include_top = "predictions" in arrays
    inferred["include_top"] = include_top
    if include_top:
        inferred["classes"] = int(arrays["predictions"][-1].shape[-1])
        inferred["classifier_activation"] = keras_source.classifier_activation
    else:
        inferred["pooling"] = keras_source.pooling
    if keras_source.input_shape is not None:
        inferred["input_shape"] = keras_source.input_shape
    if keras_source.dropout_rate is not None:
        inferred["dropout_rate"] = keras_source.dropout_rate
    stats = keras_source.normalization()
    explicit_normalization = bool(
        {"normalization_mean", "normalization_std", "include_preprocessing"} & create_kwargs.keys()
    )
    if stats is not None:
        inferred["normalization_mean"], inferred["normalization_std"] = stats
    model = build_for_source(create_kwargs, inferred)
    load_keras_applications_arrays(
        model, keras_source, check_normalization=not explicit_normalization
    )
    return model
