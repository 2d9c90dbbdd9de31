"""Growing a trained EfficientNet into a wider and deeper one that computes the same function.

`grow_model(model, width_coefficient=..., depth_coefficient=...)` builds the variant of the
larger coefficients and fills it from `model`, so that a larger student starts from its
teacher's knowledge instead of from random weights:

- **Width** (function-preserving widening, as in Net2Net): each layer's extra output channels
  copy existing channels chosen at random (kernel columns, biases, batch-norm parameters and
  moving statistics, depthwise kernels); the layer that reads them divides the copied input
  weights by the number of copies, so its sums are unchanged. Channels joined by a residual
  connection share one mapping, so the additions stay consistent.
- **Depth**: a stage's extra blocks are appended after its existing ones as identities: they are
  residual MBConv blocks whose projection batch norm has gamma = beta = 0, so their branch adds
  zero (in training and inference) until gamma moves away from zero.

Copied channels have equal incoming weights; dropout before the classifier and, optionally,
`noise_stddev` break that symmetry during training. Uses NumPy and the public Keras API only.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers

from efficientnet_tf.architecture import Architecture, BlockSpec, scaled_blocks
from efficientnet_tf.blocks import InputNormalization, MBConvBlock
from efficientnet_tf.network import EfficientNetModel, architecture_of, build_network


def grow_model(
    model: keras.Model,
    *,
    width_coefficient: float,
    depth_coefficient: float,
    seed: int = 0,
    noise_stddev: float = 0.0,
    **overrides: Any,
) -> EfficientNetModel:
    """Returns the EfficientNet of the given (equal or larger) coefficients whose outputs equal
    `model`'s before any training.

    Args:
        model: an EfficientNet built by `efficientnet_tf` (it records its architecture).
        width_coefficient, depth_coefficient: the grown model's absolute coefficients, each at
            least the model's own.
        seed: chooses which channels the extra channels copy.
        noise_stddev: Gaussian noise, relative to each kernel's standard deviation, added to
            the copied output channels of convolutions to break their symmetry (0 keeps the
            function exact).
        overrides: `build_network` arguments of the grown model other than its shape, e.g. a
            student's `dropout_rate` or `stochastic_depth_rate`; by default they are `model`'s.

    Raises:
        ValueError: for a model without an architecture record, smaller coefficients, a layer
            that would shrink, or a block whose residual connection the growth would add or
            remove (which no weight copy can make exact).
    """
    architecture = architecture_of(model)
    if architecture is None:
        raise ValueError(
            f"{model.name} records no EfficientNet architecture; grow_model needs a model built "
            "by efficientnet_tf (or saved by it)."
        )
    if (
        width_coefficient < architecture.width_coefficient
        or depth_coefficient < architecture.depth_coefficient
    ):
        raise ValueError(
            f"grow_model makes models larger: width {width_coefficient} and depth "
            f"{depth_coefficient} must be at least the model's {architecture.width_coefficient} "
            f"and {architecture.depth_coefficient}."
        )
    config = {**builder_config(model), **overrides}
    grown = build_network(
        width_coefficient,
        depth_coefficient,
        architecture.default_resolution,
        blocks=architecture.blocks,
        small_images=architecture.small_images,
        depth_divisor=architecture.depth_divisor,
        **config,
    )
    _Grower(model, grown, seed, noise_stddev).fill(
        _stages(architecture, architecture.width_coefficient, architecture.depth_coefficient),
        _stages(architecture, width_coefficient, depth_coefficient),
    )
    return grown


def builder_config(model: keras.Model) -> dict[str, Any]:
    """The `build_network` arguments besides the architecture that `model` was built with, read
    off its layers (input shape, head, activation, noise rates, normalization)."""
    names = {layer.name for layer in model.layers}
    config: dict[str, Any] = {
        "input_shape": tuple(model.input_shape[1:]),
        "name": model.name,
        "include_top": "predictions" in names,
        "include_preprocessing": "normalization" in names,
        "activation": keras.activations.serialize(model.get_layer("stem_activation").activation),
        "sync_batch_norm": bool(model.get_layer("stem_bn").synchronized),
    }
    if config["include_preprocessing"]:
        normalization: InputNormalization = model.get_layer("normalization")
        config.update(normalization_mean=normalization.mean, normalization_std=normalization.std)
    if config["include_top"]:
        head: layers.Dense = model.get_layer("predictions")
        activation = keras.activations.serialize(head.activation)
        config.update(
            classes=head.units,
            classifier_activation=None if activation == "linear" else activation,
            dropout_rate=model.get_layer("top_dropout").rate if "top_dropout" in names else 0.0,
        )
    else:
        config["pooling"] = "avg" if "avg_pool" in names else "max" if "max_pool" in names else None
    blocks = [layer for layer in model.layers if isinstance(layer, MBConvBlock)]
    # Block i of N has rate * i / N; the last block gives the model's rate back.
    last = len(blocks) - 1
    config["stochastic_depth_rate"] = (
        blocks[-1].stochastic_depth_rate * len(blocks) / last if last > 0 else 0.0
    )
    return config


def _stages(architecture: Architecture, width: float, depth: float) -> list[list[BlockSpec]]:
    """The concrete blocks of the architecture at these coefficients, grouped by stage."""
    specs = scaled_blocks(
        architecture.blocks, width, depth, 0.0, architecture.small_images,
        architecture.depth_divisor,
    )
    stages: list[list[BlockSpec]] = [[] for _ in architecture.blocks]
    for spec in specs:
        stages[spec.stage].append(spec)
    return stages


class _Grower:
    """Copies `source`'s weights into the larger `target`, one channel mapping per channel
    space (an array giving, for each of the target's channels, the source channel it copies)."""

    def __init__(self, source: keras.Model, target: keras.Model, seed: int,
                 noise_stddev: float):
        self.source = source
        self.target = target
        # Separate streams: the noise does not change which channels are copied.
        self.rng = np.random.default_rng([seed, 0])
        self.noise_rng = np.random.default_rng([seed, 1])
        self.noise_stddev = noise_stddev

    def fill(self, old_stages: list[list[BlockSpec]], new_stages: list[list[BlockSpec]]) -> None:
        stem = self.source.get_layer("stem_conv")
        stream = self.channel_map(stem.filters, self.target.get_layer("stem_conv").filters,
                                  "stem_conv")
        self.copy("stem_conv", None, stream)
        self.copy("stem_bn", None, stream)
        for old_blocks, new_blocks in zip(old_stages, new_stages, strict=True):
            for index, new in enumerate(new_blocks):
                if index < len(old_blocks):
                    stream = self.copy_block(old_blocks[index], new, stream)
                else:
                    self.identity_block(new)
        head = self.channel_map(self.source.get_layer("top_conv").filters,
                                self.target.get_layer("top_conv").filters, "top_conv")
        self.copy("top_conv", stream, head)
        self.copy("top_bn", None, head)
        if "predictions" in {layer.name for layer in self.source.layers}:
            self.copy("predictions", head, None)

    def channel_map(self, old: int, new: int, where: str) -> np.ndarray:
        """Target channel -> source channel: the first `old` map to themselves, the extra ones
        to source channels drawn at random."""
        if new < old:
            raise ValueError(f"{where}: {new} channels in the grown model, fewer than {old}.")
        return np.concatenate([np.arange(old), self.rng.integers(0, old, new - old)])

    def copy_block(self, old: BlockSpec, new: BlockSpec, stream: np.ndarray) -> np.ndarray:
        """Copies block `old` into block `new`; returns the mapping of its output channels."""
        source: MBConvBlock = self.source.get_layer(old.name)
        target: MBConvBlock = self.target.get_layer(new.name)
        if source.has_skip != target.has_skip:
            raise ValueError(
                f"{old.name}: the grown block {'has' if target.has_skip else 'lacks'} the "
                f"residual connection the original {'lacks' if target.has_skip else 'has'} "
                f"({old.input_filters}->{old.output_filters} vs {new.input_filters}->"
                f"{new.output_filters} filters); choose coefficients that keep it."
            )
        expanded = stream
        if source.expand_ratio != 1:
            expanded = self.channel_map(source.expand_conv.filters, target.expand_conv.filters,
                                        f"{old.name}/expand_conv")
            _copy_layer(source.expand_conv, target.expand_conv, stream, expanded, self.noise)
            _copy_layer(source.expand_bn, target.expand_bn, None, expanded)
        _copy_layer(source.dwconv, target.dwconv, None, expanded, self.noise)
        _copy_layer(source.bn, target.bn, None, expanded)
        if source.se is not None:
            reduced = self.channel_map(source.se.reduced_filters, target.se.reduced_filters,
                                       f"{old.name}/se")
            _copy_layer(source.se.reduce, target.se.reduce, expanded, reduced, self.noise)
            _copy_layer(source.se.expand, target.se.expand, reduced, expanded, self.noise)
        output = stream if source.has_skip else self.channel_map(
            source.output_filters, target.output_filters, f"{old.name}/project_conv")
        _copy_layer(source.project_conv, target.project_conv, expanded, output, self.noise)
        _copy_layer(source.project_bn, target.project_bn, None, output)
        return output

    def identity_block(self, new: BlockSpec) -> None:
        """Makes the added block `new` add zero: projection batch norm gamma = beta = 0."""
        block: MBConvBlock = self.target.get_layer(new.name)
        if not block.has_skip:
            raise ValueError(f"{new.name}: an added block must be residual to start as identity.")
        block.project_bn.gamma.assign(np.zeros(block.project_bn.gamma.shape, "float32"))
        block.project_bn.beta.assign(np.zeros(block.project_bn.beta.shape, "float32"))

    def copy(self, name: str, inputs: np.ndarray | None, outputs: np.ndarray | None) -> None:
        _copy_layer(self.source.get_layer(name), self.target.get_layer(name), inputs, outputs,
                    self.noise)

    def noise(self, kernel: np.ndarray, axis: int, copies: np.ndarray) -> np.ndarray:
        """`kernel` with noise on the output channels in `copies` (none when noise_stddev=0)."""
        if not self.noise_stddev or not copies.size:
            return kernel
        scale = self.noise_stddev * float(np.std(kernel))
        noisy = np.moveaxis(kernel, axis, 0).copy()
        noisy[copies] += self.noise_rng.normal(0.0, scale, noisy[copies].shape).astype(kernel.dtype)
        return np.moveaxis(noisy, 0, axis)


def _take(array: np.ndarray, axis: int, mapping: np.ndarray | None, split: bool = False):
    """Channels of `array` along `axis` gathered by `mapping`; with `split`, each divided by
    how many times its source channel is used, so a sum over the copies is unchanged."""
    if mapping is None:
        return array
    gathered = np.take(array, mapping, axis=axis)
    if split:
        copies = np.bincount(mapping, minlength=array.shape[axis])[mapping]
        shape = [1] * array.ndim
        shape[axis] = -1
        gathered = gathered / copies.reshape(shape).astype(array.dtype)
    return gathered


def _copy_layer(source: layers.Layer, target: layers.Layer, inputs: np.ndarray | None,
                outputs: np.ndarray | None, noise=None) -> None:
    """Sets `target`'s weights from `source`'s: input channels through `inputs` (split) and
    output channels through `outputs` (copied); None keeps that axis as it is."""
    values = []
    for variable in source.weights:
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        if variable.name == "kernel":
            if isinstance(source, layers.DepthwiseConv2D):  # (k, k, channels, 1): per channel
                in_axis, out_axis, inputs_here = None, 2, None
            else:  # conv (k, k, in, out) or dense (in, out)
                in_axis, out_axis, inputs_here = value.ndim - 2, value.ndim - 1, inputs
            if inputs_here is not None:
                value = _take(value, in_axis, inputs_here, split=True)
            channels = value.shape[out_axis]
            value = _take(value, out_axis, outputs)
            if noise is not None and outputs is not None:
                value = noise(value, out_axis, np.arange(channels, len(outputs)))
        else:  # biases and batch-norm vectors: one entry per output channel
            value = _take(value, 0, outputs)
        values.append(value)
    target.set_weights(values)

