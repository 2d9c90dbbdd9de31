"""Pretrained weights: import from keras.applications EfficientNet and reference TF1 checkpoints.

Three sources map onto the model built by `efficientnet_tf.model`:

* keras.applications `EfficientNetB0..B7` (a model object, its legacy Keras 2 `.h5` as published
  at storage.googleapis.com/keras-applications, or a Keras 3 `.weights.h5`): layer names such as
  `block2a_expand_conv` become our nested `block2a` / `expand_conv`.
* checkpoints of the reference TF code (tensorflow/tpu and google-research/noisystudent), whose
  flat variable names are `efficientnet-b3/blocks_4/conv2d/kernel` and so on, with
  `/ExponentialMovingAverage` shadows that are used by default.
* published names: "imagenet:efficientnet-b3" (the keras.applications files, md5-checked) and
  "noisy-student:efficientnet-b3" (the reference's Noisy Student archives).

The name mappings are pure functions of a name -> array mapping; only `_open_tf_checkpoint`
imports TensorFlow, lazily. Loading is strict: a missing, extra or differently shaped variable
raises an error naming the layer and both shapes, never a partial load.

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
import glob
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

from efficientnet_tf import scaling
from efficientnet_tf.blocks import IMAGENET_STD, InputNormalization, MBConvBlock
from efficientnet_tf.model import (
    DEFAULT_BLOCKS,
    HEAD_FILTERS,
    STEM_FILTERS,
    EfficientNet,
    create_model,
    scaled_blocks,
)

KERAS_APPS_ORIGIN = "https://storage.googleapis.com/keras-applications/"
NOISY_STUDENT_ORIGIN = (
    "https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/noisystudent/"
)
# md5 of the published keras.applications files, (with top, notop); from keras'
# `keras/src/applications/efficientnet.py` WEIGHTS_HASHES.
KERAS_APPS_HASHES: dict[str, tuple[str, str]] = {
    "efficientnet-b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "efficientnet-b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "efficientnet-b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "efficientnet-b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "efficientnet-b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "efficientnet-b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "efficientnet-b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "efficientnet-b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
# Noisy Student archives listed in the tensorflow/tpu EfficientNet README (no published hash).
NOISY_STUDENT_ARCHIVES: dict[tuple[str, str], str] = {
    **{
        ("noisy-student", f"efficientnet-b{i}"): f"noisy_student_efficientnet-b{i}.tar.gz"
        for i in range(8)
    },
    ("noisy-student", "efficientnet-l2"): "noisy_student_efficientnet-l2.tar.gz",
    # The same L2 architecture fine-tuned at 475x475 (README: "L2-475").
    ("noisy-student-475", "efficientnet-l2"): "noisy_student_efficientnet-l2_475.tar.gz",
}
PUBLISHED_TAGS = ("imagenet", "noisy-student", "noisy-student-475")
OFFLINE_ENV = "EFFICIENTNET_TF_OFFLINE"
EMA_SUFFIX = "/ExponentialMovingAverage"

_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
# Sublayers of our MBConvBlock in weight-loading order, with the keras.applications suffix.
_BLOCK_SUBLAYERS = (
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
_KERAS_APPS_BLOCK = re.compile(r"^block\d+[a-z]+_dwconv$")
_NORMALIZATION_NAME = re.compile(r"^normalization(_\d+)?$")


# --------------------------------------------------------------------------------------------
# Our model's weighted layers


@dataclasses.dataclass(frozen=True)
class _Target:
    """One weighted Keras layer of our model, by its path ('block2a/se/reduce')."""

    path: str
    layer: keras.layers.Layer
    block_index: int | None = None  # global MBConv index (the reference's blocks_i)
    expands: bool = False  # the block has an expansion conv (expand_ratio != 1)


def _targets(model: keras.Model) -> list[_Target]:
    """Weighted layers of an efficientnet_tf model in build order."""
    targets: list[_Target] = []
    block_index = 0
    for layer in model.layers:
        if isinstance(layer, MBConvBlock):
            expands = layer.expand_ratio != 1
            for path, _ in _BLOCK_SUBLAYERS:
                sub = _sublayer(layer, path)
                if sub is not None:
                    targets.append(_Target(f"{layer.name}/{path}", sub, block_index, expands))
            block_index += 1
        elif layer.name in _TOP_LEVEL:
            targets.append(_Target(layer.name, layer))
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


def _has_top(model: keras.Model) -> bool:
    return any(layer.name == "predictions" for layer in model.layers)


def _normalization_layer(model: keras.Model) -> InputNormalization | None:
    for layer in model.layers:
        if isinstance(layer, InputNormalization):
            return layer
    return None


def _assign(
    target: _Target, arrays: Sequence[np.ndarray], names: Sequence[str], source: str
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


def _set_all(assignments: list[tuple[_Target, list[np.ndarray]]]) -> None:
    """Sets weights only after every layer was checked, so a failed load changes nothing."""
    for target, values in assignments:
        target.layer.set_weights(values)


# --------------------------------------------------------------------------------------------
# keras.applications names


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


def _keras_name(target: _Target) -> str:
    if target.block_index is None:
        return target.path
    block, _, sub = target.path.partition("/")
    suffix = dict(_BLOCK_SUBLAYERS)[sub]
    return f"{block}_{suffix}"


def load_keras_applications_arrays(
    model: keras.Model, source: KerasSource, check_normalization: bool = True
) -> None:
    """Copies keras.applications weights (by layer name) into an efficientnet_tf model.

    Raises ValueError on the first missing, extra or differently shaped layer, and when the
    source's input normalization differs from the model's (`check_normalization`).
    """
    arrays = source.arrays
    include_top = _has_top(model)
    if include_top and "predictions" not in arrays:
        raise ValueError(
            f"{source.description} has no classifier ('predictions' layer; a _notop file?): "
            "build the model with include_top=False."
        )
    assignments = []
    used = {"normalization"}
    for target in _targets(model):
        name = _keras_name(target)
        if name not in arrays:
            raise ValueError(
                f"{source.description} has no layer '{name}' for model layer '{target.path}': "
                "the weights belong to another variant (or are not keras.applications weights)."
            )
        used.add(name)
        names = [f"{name}[{i}]" for i in range(len(arrays[name]))]
        assignments.append((target, _assign(target, arrays[name], names, source.description)))
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
    _set_all(assignments)


def _check_normalization(model: keras.Model, source: KerasSource) -> None:
    layer = _normalization_layer(model)
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


# --------------------------------------------------------------------------------------------
# Variant inference


def _preset_signatures() -> dict[str, tuple[int, int, int]]:
    """(stem filters, head filters, number of blocks) of every preset."""
    signatures = {}
    for name, preset in scaling.PRESETS.items():
        blocks = scaled_blocks(DEFAULT_BLOCKS, preset.width, preset.depth)
        signatures[name] = (
            scaling.round_filters(STEM_FILTERS, preset.width),
            scaling.round_filters(HEAD_FILTERS, preset.width),
            len(blocks),
        )
    return signatures


def _preset_from_text(text: str | None) -> str | None:
    """'efficientnetb3_notop.h5', 'efficientnet-b3' -> 'efficientnet-b3'."""
    if not text:
        return None
    match = re.search(r"efficientnet[-_]?(b\d|l2)", text.lower())
    return f"efficientnet-{match.group(1)}" if match else None


def infer_preset(stem: int, head: int, blocks: int, description: str) -> str:
    """The preset with these stem/head filters and block count; ValueError if none."""
    signature = (stem, head, blocks)
    for name, expected in _preset_signatures().items():
        if expected == signature:
            return name
    raise ValueError(
        f"{description}: stem {stem} / head {head} filters and {blocks} blocks match no preset "
        f"({', '.join(scaling.PRESETS)}); pass name=... or the scaling coefficients explicitly."
    )


def _build(create_kwargs: dict[str, Any], inferred: dict[str, Any]) -> keras.Model:
    """create_model / EfficientNet with the inferred arguments overridden by the caller's."""
    kwargs = {**inferred, **create_kwargs}
    kwargs.pop("weights", None)
    if "width_coefficient" in kwargs:
        return EfficientNet(**kwargs)
    if "phi" in create_kwargs:
        kwargs.pop("name", None)
    return create_model(**kwargs)


# --------------------------------------------------------------------------------------------
# Public converters


def from_keras_applications(
    source: keras.Model | str | os.PathLike, **create_kwargs
) -> keras.Model:
    """Builds the matching efficientnet_tf model and copies the weights of a keras.applications
    EfficientNetB0..B7 (model object, legacy `.h5`, Keras 3 `.weights.h5` or `.keras` file).

    The variant, input shape, include_top, classes, pooling, classifier activation and input
    normalization are taken from the source; `create_kwargs` (any `create_model` argument,
    e.g. name='b3', input_shape=(225, 225, 3)) override them.
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
    if not {"name", "phi", "width_coefficient"} & create_kwargs.keys():
        preset = _preset_from_text(keras_source.model_name)
        if preset is None:
            blocks = sum(1 for name in arrays if _KERAS_APPS_BLOCK.match(name))
            preset = infer_preset(
                arrays["stem_conv"][0].shape[-1],
                arrays["top_conv"][0].shape[-1],
                blocks,
                keras_source.description,
            )
        inferred["name"] = preset
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
    model = _build(create_kwargs, inferred)
    load_keras_applications_arrays(
        model, keras_source, check_normalization=not explicit_normalization
    )
    return model


# --------------------------------------------------------------------------------------------
# Reference TF checkpoints


def _tf_variable_names(target: _Target, scope: str) -> list[str]:
    """Reference checkpoint names of a layer's variables, in Keras weight order.

    Blocks are `blocks_<global index>`; inside a block the reference creates `conv2d` (expand,
    when expand_ratio != 1), `depthwise_conv2d`, `se/conv2d` (reduce), `se/conv2d_1` (expand),
    then the projection as the next `conv2d_*`; batch norms are numbered the same way.
    """
    leaves = [
        "depthwise_kernel" if isinstance(target.layer, keras.layers.DepthwiseConv2D) else w.name
        for w in target.layer.weights
    ]
    if target.block_index is None:
        part, _, _ = target.path.partition("/")
        prefix = {
            "stem_conv": "stem/conv2d",
            "stem_bn": "stem/tpu_batch_normalization",
            "top_conv": "head/conv2d",
            "top_bn": "head/tpu_batch_normalization",
            "predictions": "head/dense",
        }[part]
    else:
        sub = target.path.partition("/")[2]
        e = target.expands
        prefix = (
            f"blocks_{target.block_index}/"
            + {
                "expand_conv": "conv2d",
                "expand_bn": "tpu_batch_normalization",
                "dwconv": "depthwise_conv2d",
                "bn": "tpu_batch_normalization_1" if e else "tpu_batch_normalization",
                "se/reduce": "se/conv2d",
                "se/expand": "se/conv2d_1",
                "project_conv": "conv2d_1" if e else "conv2d",
                "project_bn": "tpu_batch_normalization_2" if e else "tpu_batch_normalization_1",
            }[sub]
        )
    return [f"{scope}/{prefix}/{leaf}" for leaf in leaves]


_TF_MODEL_LEAVES = ("kernel", "depthwise_kernel", "bias", *_BN_VARIABLES)


def _tf_model_variables(names: Iterable[str], scope: str) -> list[str]:
    """Model variables under `scope`, named without the EMA suffix (optimizer slots and step
    counters left out); a checkpoint may hold only the EMA shadows."""
    start = scope + "/"
    found = dict.fromkeys(
        name[: -len(EMA_SUFFIX)] if name.endswith(EMA_SUFFIX) else name for name in names
    )
    return [
        name
        for name in found
        if name.startswith(start) and name.rsplit("/", 1)[-1] in _TF_MODEL_LEAVES
    ]


def load_tf_arrays(
    model: keras.Model,
    arrays: Mapping[str, np.ndarray],
    scope: str,
    use_ema: bool = True,
    description: str = "checkpoint",
) -> None:
    """Copies reference-checkpoint variables (a name -> array mapping) into the model.

    With `use_ema`, every variable is taken from its `/ExponentialMovingAverage` shadow (what
    the reference uses for eval, export and pseudo labels). Raises ValueError on the first
    missing, unused or differently shaped variable.
    """
    names = list(arrays.keys())
    raw = _tf_model_variables(names, scope)
    if not raw:
        scopes = sorted({n.split("/blocks_")[0] for n in names if "/blocks_" in n})
        raise ValueError(
            f"{description} has no variables under scope '{scope}'. Scopes found: "
            f"{scopes or 'none'}; pass the right one as scope=..."
        )
    if use_ema and not any(n.endswith(EMA_SUFFIX) for n in names):
        raise ValueError(
            f"{description} has no '{EMA_SUFFIX}' shadow variables; pass use_ema=False to load "
            "the raw training weights."
        )
    include_top = _has_top(model)
    assignments = []
    used = set()
    for target in _targets(model):
        wanted = _tf_variable_names(target, scope)
        keys = [n + EMA_SUFFIX if use_ema else n for n in wanted]
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise ValueError(
                f"{description} lacks '{missing[0]}' for model layer '{target.path}': the "
                "checkpoint belongs to another variant or scope."
            )
        used.update(wanted)
        values = [arrays[k] for k in keys]
        assignments.append((target, _assign(target, values, keys, description)))
    unused = [
        n
        for n in raw
        if n not in used and (include_top or not n.startswith(f"{scope}/head/dense/"))
    ]
    if unused:
        raise ValueError(
            f"{description} has {len(unused)} variables that the model lacks, first '{unused[0]}': "
            "the checkpoint belongs to a deeper or different variant."
        )
    _set_all(assignments)


class _CheckpointArrays(Mapping):
    """Read-on-demand view of a TF checkpoint: name -> ndarray (L2 checkpoints are large)."""

    def __init__(self, shapes: dict[str, list[int]], read: Callable[[str], Any]):
        self.shapes = shapes
        self._read = read

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.shapes:
            raise KeyError(name)
        return np.asarray(self._read(name))

    def __iter__(self):
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix, a `.index` file or a directory holding one checkpoint."""
    path = os.fspath(path)
    if path.endswith(".index"):
        path = path[: -len(".index")]
    if os.path.exists(path + ".index"):
        return path
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.index")))
        found += sorted(glob.glob(os.path.join(path, "*", "*.index")))
        if len(found) == 1:
            return found[0][: -len(".index")]
        if found:
            raise ValueError(
                f"{path} holds {len(found)} checkpoints ({', '.join(found[:3])}, ...); pass the "
                "prefix of one (the path without '.index')."
            )
    raise FileNotFoundError(
        f"No TF checkpoint at {path}: expected '{path}.index' (a checkpoint prefix such as "
        "'noisy-student-efficientnet-b0/model.ckpt') or a directory containing one."
    )


def _open_tf_checkpoint(prefix: str) -> _CheckpointArrays:
    """The only TensorFlow use in this package: reading the TF checkpoint format."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            f"Reading the TF checkpoint {prefix} needs TensorFlow: pip install tensorflow "
            "(or convert it once, elsewhere, with `python -m tools.convert_weights`)."
        ) from error
    reader = tf.train.load_checkpoint(prefix)
    return _CheckpointArrays(reader.get_variable_to_shape_map(), reader.get_tensor)


def infer_scope(names: Iterable[str], description: str) -> str:
    """The model scope ('efficientnet-b3') of a reference checkpoint."""
    scopes = sorted(
        {n.split("/stem/conv2d/kernel")[0] for n in names if n.endswith("/stem/conv2d/kernel")}
    )
    if len(scopes) != 1:
        raise ValueError(
            f"{description}: found model scopes {scopes or 'none'}; pass name=... (the variant) "
            "and scope=... (the variable prefix, e.g. 'efficientnet-b0')."
        )
    return scopes[0]


def from_tf_checkpoint(
    path: str | os.PathLike,
    name: str | None = None,
    use_ema: bool = True,
    scope: str | None = None,
    **create_kwargs,
) -> keras.Model:
    """Builds the variant `name` ('efficientnet-b3', 'b3'; inferred from the variable scope when
    None) and loads a reference TF checkpoint into it.

    Args:
        path: checkpoint prefix (`.../model.ckpt`), its `.index` file or a directory.
        name: variant; for custom variants pass scaling arguments in `create_kwargs`.
        use_ema: load the `/ExponentialMovingAverage` shadows (the reference's eval weights).
        scope: variable prefix, default the checkpoint's single model scope (a student run of
            google-research/noisystudent also holds 'teacher_model/efficientnet-bX').
        create_kwargs: `create_model` arguments, e.g. small_images=True for SVHN/CIFAR models.
            `classes` and `include_top` default to what the checkpoint holds.
    """
    prefix = resolve_checkpoint(os.fspath(path))
    arrays = _open_tf_checkpoint(prefix)
    description = f"checkpoint {prefix}"
    scope = scope or infer_scope(list(arrays), description)
    inferred: dict[str, Any] = {}
    if name is not None:
        inferred["name"] = name
    elif not {"phi", "width_coefficient"} & create_kwargs.keys():
        preset = _preset_from_text(scope)
        if preset is None:
            raise ValueError(f"{description}: scope '{scope}' names no preset; pass name=...")
        inferred["name"] = preset
    dense = f"{scope}/head/dense/kernel"
    dense_shape = arrays.shapes.get(dense) or arrays.shapes.get(dense + EMA_SUFFIX)
    inferred["include_top"] = dense_shape is not None
    if dense_shape is not None:
        inferred["classes"] = int(dense_shape[-1])
    model = _build(create_kwargs, inferred)
    load_tf_arrays(model, arrays, scope, use_ema=use_ema, description=description)
    return model


# --------------------------------------------------------------------------------------------
# Published weights and load_pretrained


class Published(NamedTuple):
    """A published weights file: where it comes from and how it is checked."""

    fname: str
    origin: str
    file_hash: str | None
    archive: bool


def published_weights(tag: str, preset: str, include_top: bool) -> Published:
    """The published file for `tag` ('imagenet', 'noisy-student') and a preset name."""
    preset = scaling.canonical_name(preset)
    if tag == "imagenet":
        if preset not in KERAS_APPS_HASHES:
            raise ValueError(
                f"No 'imagenet' (keras.applications) weights for {preset}: they exist for "
                f"{', '.join(KERAS_APPS_HASHES)}. Noisy Student weights exist for "
                f"{', '.join(sorted({p for _, p in NOISY_STUDENT_ARCHIVES}))}."
            )
        short = preset.replace("-", "")
        fname = f"{short}.h5" if include_top else f"{short}_notop.h5"
        file_hash = KERAS_APPS_HASHES[preset][0 if include_top else 1]
        return Published(fname, KERAS_APPS_ORIGIN + fname, file_hash, archive=False)
    if (tag, preset) in NOISY_STUDENT_ARCHIVES:
        fname = NOISY_STUDENT_ARCHIVES[(tag, preset)]
        return Published(fname, NOISY_STUDENT_ORIGIN + fname, None, archive=True)
    available = ", ".join(f"{t}:{p}" for t, p in NOISY_STUDENT_ARCHIVES)
    raise ValueError(
        f"No published weights '{tag}:{preset}'. Available: imagenet:b0..b7, {available}."
    )


def cache_dir() -> str:
    """Where published weights are cached: `$KERAS_HOME` (read at call time) or ~/.keras."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _file_hash(path: str, reference: str) -> str:
    hasher = hashlib.sha256() if len(reference) == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def fetch(published: Published) -> str:
    """Local path of a published file (for archives: the extracted directory), downloading it
    with keras.utils.get_file unless `$EFFICIENTNET_TF_OFFLINE` is set.

    Raises:
        FileNotFoundError: not cached and not downloadable; names the URL and the cache path.
        ValueError: a cached file whose hash differs from the published one.
    """
    directory = os.path.join(cache_dir(), "models")
    path = os.path.join(directory, published.fname)
    extracted = os.path.join(directory, published.fname.split(".")[0] + "_extracted")
    if published.archive and glob.glob(os.path.join(extracted, "**", "*.index"), recursive=True):
        return extracted  # extracted before (or by hand)
    if not os.path.exists(path):
        path = _download(published, path, extracted)
    elif published.file_hash is not None:
        actual = _file_hash(path, published.file_hash)
        if actual != published.file_hash:
            raise ValueError(
                f"{path} has hash {actual}, but the published file {published.origin} has "
                f"{published.file_hash}. Delete it and download it again; to use a file of your "
                "own, pass its path as weights= instead of a published name."
            )
    if not published.archive:
        return path
    return keras.utils.get_file(  # the archive is in the cache: this only extracts it
        published.fname,
        published.origin,
        cache_subdir="models",
        cache_dir=cache_dir(),
        extract=True,
    )


def _download(published: Published, path: str, extracted: str) -> str:
    how = f"Download {published.origin} and save it as {path}"
    if published.archive:
        how += f" (or extract it into {extracted})"
    how += "; KERAS_HOME sets the cache directory (default ~/.keras)."
    if os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"{published.fname} is not cached and {OFFLINE_ENV} is set. {how}")
    try:
        return keras.utils.get_file(
            published.fname,
            published.origin,
            file_hash=published.file_hash,
            cache_subdir="models",
            cache_dir=cache_dir(),
        )
    except Exception as error:  # no network, HTTP error, hash mismatch after download
        raise FileNotFoundError(
            f"Could not download {published.origin} ({error}). {how}"
        ) from error


def _published_preset(model: keras.Model, preset: str | None) -> str:
    """The preset named in 'imagenet:<preset>', else the one matching the model's shapes."""
    if preset:
        return scaling.canonical_name(preset)
    targets = {t.path: t.layer for t in _targets(model)}
    blocks = sum(1 for layer in model.layers if isinstance(layer, MBConvBlock))
    return infer_preset(
        targets["stem_conv"].weights[0].shape[-1],
        targets["top_conv"].weights[0].shape[-1],
        blocks,
        f"model {model.name!r}",
    )


def load_pretrained(model: keras.Model, weights: str | os.PathLike) -> None:
    """Loads weights into an efficientnet_tf model, in place.

    `weights` is one of:
      * "imagenet:<preset>" / "imagenet": the keras.applications file (top or notop variant
        following the model), md5-checked, cached under $KERAS_HOME/models;
      * "noisy-student:<preset>" / "noisy-student": the reference's Noisy Student checkpoint
        ("noisy-student-475:efficientnet-l2" for L2 at 475 px), EMA weights;
      * a path: `.keras` or our own `.weights.h5` (Keras' loader), a keras.applications `.h5` /
        `.weights.h5`, or a TF checkpoint prefix / directory of the reference code.
    """
    if not isinstance(weights, str | os.PathLike):
        raise TypeError(f"weights must be a name or a path, got {type(weights).__name__}.")
    spec = os.fspath(weights)
    if os.path.exists(spec) or os.path.exists(spec + ".index"):
        _load_path(model, spec)
        return
    tag, _, preset = spec.partition(":")
    if tag not in PUBLISHED_TAGS:
        raise ValueError(
            f"weights={spec!r} is neither an existing file nor a published name; use a path, "
            f"None, or one of {', '.join(repr(t) for t in PUBLISHED_TAGS)} (optionally "
            "':<variant>', e.g. 'imagenet:efficientnet-b3')."
        )
    preset = _published_preset(model, preset)
    include_top = _has_top(model)
    if include_top:
        classes = model.get_layer("predictions").weights[0].shape[-1]
        if classes != 1000:
            raise ValueError(
                f"Published '{tag}' weights have a 1000-class classifier, the model has {classes} "
                "classes: build it with include_top=False and add your own head."
            )
    published = published_weights(tag, preset, include_top)
    local = fetch(published)
    if published.archive:
        _load_checkpoint(model, local)
    else:
        load_keras_applications_arrays(model, read_keras_file(local))


def _load_path(model: keras.Model, path: str) -> None:
    if path.endswith(".h5") and is_keras_applications_file(path):
        load_keras_applications_arrays(model, read_keras_file(path))
    elif path.endswith((".keras", ".h5")):
        model.load_weights(path)
    else:
        _load_checkpoint(model, path)


def _load_checkpoint(model: keras.Model, path: str) -> None:
    """EMA weights of the single model scope of a reference checkpoint (prefix or directory)."""
    prefix = resolve_checkpoint(path)
    arrays = _open_tf_checkpoint(prefix)
    description = f"checkpoint {prefix}"
    scope = infer_scope(list(arrays), description)
    load_tf_arrays(model, arrays, scope, description=description)


__all__ = [
    "KerasSource",
    "Published",
    "cache_dir",
    "fetch",
    "from_keras_applications",
    "from_tf_checkpoint",
    "infer_preset",
    "infer_scope",
    "load_keras_applications_arrays",
    "load_pretrained",
    "load_tf_arrays",
    "published_weights",
    "read_keras_file",
    "resolve_checkpoint",
]
