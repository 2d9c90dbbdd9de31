"""Rebuilding a functional model's graph layer by layer, with some layers replaced.

`portable_model` (built-in Keras layers only) and `fold_batch_norm` (batch norms folded into
their convolutions) are both such rebuilds: they walk the model's layers in graph order and give
each one new layers applied to the new graph's tensors, and both unroll ``MBConvBlock`` into its
layers (`unrolled_mbconv`). The model itself is left as it was (its
layers are copied, never called again, so each keeps its single inbound node).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

# (layer of the model, its inputs in the new graph, name) -> its outputs in the new graph
Replace = Callable[[layers.Layer, object, str], object]
# (convolution, its batch norm, inputs, convolution's name, batch norm's name) -> outputs
ConvBatchNorm = Callable[[layers.Layer, layers.Layer, object, str, str], object]


def rebuild_graph(model: keras.Model, replace: Replace) -> keras.Model:
    """A functional ``keras.Model`` with ``model``'s name, inputs and outputs whose every layer
    is ``replace``'s; ``model`` must be functional (a graph of layers called once each)."""
    check_functional(model)
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=f"input_{i}")
              for i, t in enumerate(model.inputs)]
    tensors = {id(old): new for old, new in zip(model.inputs, inputs, strict=True)}
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        arguments = keras.tree.map_structure(lambda t: tensors[id(t)], layer.input)
        tensors[id(layer.output)] = replace(layer, arguments, layer.name)
    outputs = [tensors[id(t)] for t in model.outputs]
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                       outputs[0] if len(outputs) == 1 else outputs, name=model.name)


def check_functional(model) -> None:
    """TypeError unless ``model`` is a functional Keras model (a subclassed one has no graph)."""
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise TypeError(f"{getattr(model, 'name', model)!r} is not a functional Keras model; "
                        "only a graph of layers can be rebuilt")


def apply_copy(cls: type[layers.Layer], layer: layers.Layer, x, name: str,
               weights: list | None = None, **config):
    """A ``cls`` built from ``layer``'s config (with ``config`` on top) and named ``name``,
    applied to ``x`` and given ``weights`` (default: ``layer``'s); returns its outputs."""
    copy = cls.from_config({**layer.get_config(), **config, "name": name})
    y = copy(x)
    copy.set_weights(layer.get_weights() if weights is None else weights)
    return y


def unrolled_mbconv(block, x, name: str, *, conv_bn: ConvBatchNorm, layer: Replace):
    """An ``MBConvBlock``'s inference computation as separate layers of the new graph, in the
    block's order: ``conv_bn`` applies each convolution with its batch norm, ``layer`` the
    activations and squeeze-excite; stochastic depth (the identity at inference) is left out."""
    inputs = x
    if block.expand_ratio != 1:
        x = conv_bn(block.expand_conv, block.expand_bn, x, f"{name}_expand_conv",
                    f"{name}_expand_bn")
        x = layer(block.act, x, f"{name}_expand_activation")
    x = conv_bn(block.dwconv, block.bn, x, f"{name}_dwconv", f"{name}_bn")
    x = layer(block.act, x, f"{name}_activation")
    if block.se is not None:
        x = layer(block.se, x, f"{name}_se")
    x = conv_bn(block.project_conv, block.project_bn, x, f"{name}_project_conv",
                f"{name}_project_bn")
    if block.drop is not None:  # the residual connection
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x
