"""Checkpoints of the reference TF code (tensorflow/tpu and google-research/noisystudent), whose
flat variable names are `efficientnet-b3/blocks_4/conv2d/kernel` and so on, with
`/ExponentialMovingAverage` shadows that are used by default.

The name mapping is a pure function of a name -> array mapping; only `open_tf_checkpoint`
imports TensorFlow, lazily (reading the TF checkpoint format needs it).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras
import numpy as np

from efficientnet_tf.weights.targets import Target, assign, has_top, model_targets, set_all
from efficientnet_tf.weights.variants import build_for_source, preset_from_text

EMA_SUFFIX = "/ExponentialMovingAverage"
_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


def _tf_variable_names(target: Target, scope: str) -> list[str]:
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
    include_top = has_top(model)
    assignments = []
    used = set()
    for target in model_targets(model):
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
        assignments.append((target, assign(target, values, keys, description)))
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
    set_all(assignments)


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


def open_tf_checkpoint(prefix: str) -> _CheckpointArrays:
    """The only TensorFlow use in this package: reading the TF checkpoint format."""
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            f"Reading the TF checkpoint {prefix} needs TensorFlow: pip install tensorflow "
            "(or convert it once, elsewhere, with `efficientnet-convert-weights`)."
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
            f"{description}: found model scopes {scopes or 'none'}; pass variant=... "
            "and scope=... (the variable prefix, e.g. 'efficientnet-b0')."
        )
    return scopes[0]


def from_tf_checkpoint(
    path: str | os.PathLike,
    variant: str | None = None,
    use_ema: bool = True,
    scope: str | None = None,
    **create_kwargs,
) -> keras.Model:
    """Builds `variant` ('efficientnet-b3', 'b3'; inferred from the variable scope when None)
    and loads a reference TF checkpoint into it.

    Args:
        path: checkpoint prefix (`.../model.ckpt`), its `.index` file or a directory.
        variant: the preset; for custom variants pass scaling arguments in `create_kwargs`.
        use_ema: load the `/ExponentialMovingAverage` shadows (the reference's eval weights).
        scope: variable prefix, default the checkpoint's single model scope (a student run of
            google-research/noisystudent also holds 'teacher_model/efficientnet-bX').
        create_kwargs: `create_model` arguments, e.g. small_images=True for SVHN/CIFAR models.
            `classes` and `include_top` default to what the checkpoint holds.
    """
    prefix = resolve_checkpoint(os.fspath(path))
    arrays = open_tf_checkpoint(prefix)
    description = f"checkpoint {prefix}"
    scope = scope or infer_scope(list(arrays), description)
    inferred: dict[str, Any] = {}
    if variant is not None:
        inferred["variant"] = variant
    elif not {"phi", "width_coefficient"} & create_kwargs.keys():
        preset = preset_from_text(scope)
        if preset is None:
            raise ValueError(f"{description}: scope '{scope}' names no preset; pass variant=...")
        inferred["variant"] = preset
    dense = f"{scope}/head/dense/kernel"
    dense_shape = arrays.shapes.get(dense) or arrays.shapes.get(dense + EMA_SUFFIX)
    inferred["include_top"] = dense_shape is not None
    if dense_shape is not None:
        inferred["classes"] = int(dense_shape[-1])
    model = build_for_source(create_kwargs, inferred)
    load_tf_arrays(model, arrays, scope, use_ema=use_ema, description=description)
    return model
