"""A copy of a model made only of Keras' own layers, for deployment.

A ``.keras`` file of our models names our layer classes, so ``keras.saving.load_model`` needs
``efficientnet_tf`` installed and imported. ``portable_model`` rebuilds the inference graph from
built-in layers with the same math and the same weights; its ``.keras`` file opens in any
process that has Keras, like a ``keras.applications`` model:

* a layer of ours that subclasses a Keras layer (the fast paths: ``FusedBatchNormalization``,
  ``PointwiseConv2D``, ``SmallMapDepthwiseConv2D``, ``FusedActivation``) becomes that Keras
  layer with the same config: they compute the same function;
* ``InputNormalization`` becomes ``keras.layers.Normalization`` with constant statistics
  (x/255 - mean) / std = (x - 255 mean) / (255 std);
* ``MBConvBlock`` and ``SqueezeExcite`` become their layers in sequence (``Conv2D``,
  ``BatchNormalization``, ``Activation``, ``DepthwiseConv2D``, ``GlobalAveragePooling2D``,
  ``Multiply``, ``Add``);
* ``StochasticDepth`` is the identity at inference and is left out, so the copy is for
  inference (or fine-tuning without stochastic depth).

    portable = portable_model(model)
    portable.save("model.keras")    # keras.saving.load_model("model.keras") anywhere
"""

from __future__ import annotations

import keras
from keras import layers

from efficientnet_tf.blocks import InputNormalization, MBConvBlock, SqueezeExcite, StochasticDepth
from efficientnet_tf.rebuild import apply_copy, rebuild_graph, unrolled_mbconv

__all__ = ["portable_model"]


def portable_model(model: keras.Model) -> keras.Model:
    """A functional ``keras.Model`` of built-in layers computing ``model``'s inference outputs
    with copies of its weights (same name, inputs and outputs). Walks ``model``'s graph, so it
    works for any functional model whose layers are built-in or ours; another custom layer is
    a TypeError naming it."""
    return rebuild_graph(model, _portable_call)


def _portable_call(layer: layers.Layer, x, name: str):
    """Applies the built-in equivalent of ``layer`` (named ``name``) to ``x``."""
    if isinstance(layer, MBConvBlock):
        return _mbconv(layer, x, name)
    if isinstance(layer, SqueezeExcite):
        return _squeeze_excite(layer, x, name)
    if isinstance(layer, StochasticDepth):
        return x
    if isinstance(layer, InputNormalization):
        return layers.Normalization(
            mean=[255.0 * m for m in layer.mean], variance=[(255.0 * s) ** 2 for s in layer.std],
            dtype=layer.dtype_policy, name=name)(x)
    return _copy(layer, x, name)


def _copy(layer: layers.Layer, x, name: str):
    """``layer``'s nearest Keras base class, built from its config, applied to ``x`` and given
    its weights."""
    base = next(cls for cls in type(layer).__mro__ if cls.__module__.startswith("keras."))
    if base is layers.Layer:
        raise TypeError(f"{layer.name}: {type(layer).__name__} has no built-in Keras "
                        "equivalent; a portable copy cannot be made")
    return apply_copy(base, layer, x, name)


def _mbconv(block: MBConvBlock, x, name: str):
    return unrolled_mbconv(block, x, name, layer=_portable_call,
                           conv_bn=lambda conv, bn, x, conv_name, bn_name:
                           _copy(bn, _copy(conv, x, conv_name), bn_name))


def _squeeze_excite(se: SqueezeExcite, x, name: str):
    squeezed = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    squeezed = _copy(se.reduce, squeezed, f"{name}_reduce")
    squeezed = _copy(se.expand, squeezed, f"{name}_expand")
    return layers.Multiply(name=f"{name}_excite")([x, squeezed])
