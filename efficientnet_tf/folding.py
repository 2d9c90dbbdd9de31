"""Batch norms folded into the convolutions before them: the same function, faster inference.

At inference a batch norm is a per-channel affine map, y = (x - mean) * s + beta with
s = gamma / sqrt(variance + epsilon). Right after a convolution it can be computed by the
convolution itself: kernel * s along the output channels and a bias (b - mean) * s + beta.
``fold_batch_norm`` rebuilds a model that way, which saves one pass over every feature map: on
this project's 2-core CPU (one thread) EfficientNet-B0 at 224 px needs 1.25x less CPU per image
folded, the CIFAR recipe's half-size small-image B0 at 32 px 1.09x less
(``benchmarks/fold_batch_norm.py``). The labeling stage runs its teacher
folded, since at the paper's scale (300M unlabeled images) the teacher's forward pass is most of
the labeling cost.

The folded model is for inference only (no batch norms left to train) and agrees with the
original up to float rounding. A batch norm is folded when it normalizes the last axis of a
``Conv2D`` or ``DepthwiseConv2D`` (ours included) whose linear output feeds nothing else; any
other layer is copied as it is, so any functional Keras model can be folded (e.g.
``keras.applications``' EfficientNets).

    fast = fold_batch_norm(model)
    probabilities = fast.predict(images)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from efficientnet_tf.blocks import MBConvBlock, StochasticDepth
from efficientnet_tf.rebuild import apply_copy, check_functional, rebuild_graph, unrolled_mbconv

__all__ = ["fold_batch_norm"]

_CONVOLUTIONS = (layers.Conv2D, layers.DepthwiseConv2D)


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """An inference copy of the functional ``model`` (same name, inputs and outputs) with every
    foldable batch norm folded into its convolution (module docstring); stochastic depth, the
    identity at inference, is left out. A model that is not functional is a TypeError."""
    check_functional(model)
    pairs = _foldable_pairs(model)
    folded = {id(bn) for _, bn in pairs.values()}

    def replace(layer: layers.Layer, x, name: str):
        if isinstance(layer, MBConvBlock):
            return _folded_block(layer, x, name)
        if id(layer) in pairs:
            return _folded_conv(*pairs[id(layer)], x, name)
        if id(layer) in folded or isinstance(layer, StochasticDepth):
            return x  # a folded batch norm's input is already its output
        return apply_copy(type(layer), layer, x, name)

    return rebuild_graph(model, replace)


def _foldable_pairs(model: keras.Model) -> dict[int, tuple[layers.Layer, layers.Layer]]:
    """{id(convolution): (convolution, batch norm)} of the model's top-level layers."""
    consumers: dict[int, list] = {id(t): ["output"] for t in model.outputs}
    for layer in model.layers:
        if not isinstance(layer, layers.InputLayer):
            for tensor in keras.tree.flatten(layer.input):
                consumers.setdefault(id(tensor), []).append(layer)
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, _CONVOLUTIONS) and layer.get_config()["activation"] == "linear":
            users = consumers.get(id(layer.output), [])
            if len(users) == 1 and _folds_into(users[0], layer):
                pairs[id(layer)] = (layer, users[0])
    return pairs


def _folds_into(bn, conv: layers.Layer) -> bool:
    return (isinstance(bn, layers.BatchNormalization)
            and bn.axis in (-1, len(conv.output.shape) - 1))


def _folded_weights(conv: layers.Layer, bn: layers.BatchNormalization) -> list[np.ndarray]:
    """[kernel, bias] of ``conv`` followed by ``bn`` (inference statistics) as one convolution."""
    def value(variable) -> np.ndarray:
        return keras.ops.convert_to_numpy(variable).astype(np.float64)

    kernel = value(conv.kernel)
    depthwise = isinstance(conv, layers.DepthwiseConv2D)
    # Output channels: the kernel's last axis; depthwise, channel c * multiplier + m comes from
    # kernel[..., c, m].
    shape = kernel.shape[2:] if depthwise else kernel.shape[3:]
    channels = int(np.prod(shape))
    gamma = value(bn.gamma) if bn.scale else np.ones(channels)
    beta = value(bn.beta) if bn.center else np.zeros(channels)
    scale = gamma / np.sqrt(value(bn.moving_variance) + bn.epsilon)
    bias = value(conv.bias) if conv.use_bias else np.zeros(channels)
    kernel = kernel * scale.reshape(shape)
    bias = (bias - value(bn.moving_mean)) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def _folded_conv(conv: layers.Layer, bn: layers.BatchNormalization, x, name: str):
    return apply_copy(type(conv), conv, x, name, weights=_folded_weights(conv, bn), use_bias=True)


def _folded_block(block: MBConvBlock, x, name: str):
    """An ``MBConvBlock`` as its layers in sequence, each convolution with its batch norm."""
    return unrolled_mbconv(
        block, x, name, layer=lambda layer, x, name: apply_copy(type(layer), layer, x, name),
        conv_bn=lambda conv, bn, x, conv_name, _: _folded_conv(conv, bn, x, conv_name))
