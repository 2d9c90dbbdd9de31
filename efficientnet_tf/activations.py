"""An Activation layer whose swish gradient is one fused kernel when training on TensorFlow.

TensorFlow differentiates swish, x * sigmoid(x), with six element-wise ops over the whole map
(sigmoid recomputed, then 1 - s, x * (1 - s), 1 + ..., s * ..., dy * ...), each a full pass over
memory: on a 2-core CPU that was 17% of the op time of an EfficientNet-B0 training step at
224x224. `FusedActivation` computes the same gradient, dy * s * (1 + x * (1 - s)), in one
XLA-compiled kernel (one pass): forward + backward of the activation costs 1.4-1.9x less on
B0's maps, from 112x112 down to 2x2 (`benchmarks/fast_paths.py`).

The forward pass is unchanged (TensorFlow's own swish), and every other case is exactly
`keras.layers.Activation`: other activations, other backends, inference, and
`fast_paths.keras_computation()` blocks. XLA compiles the kernel once per input shape (about
0.1 s each on a 2-core CPU).
"""

from __future__ import annotations

import functools

import keras
from keras import layers

from efficientnet_tf.fast_paths import active as fast_paths_active

PACKAGE = "efficientnet_tf"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedActivation(layers.Activation):
    """`keras.layers.Activation`; in training on TensorFlow, swish's backward pass is fused."""

    def call(self, inputs, training=None):
        if training and self._fuses():
            return _swish_with_fused_gradient()(inputs)
        return super().call(inputs)

    def _fuses(self) -> bool:
        return fast_paths_active() and self.activation is keras.activations.silu


@functools.cache
def _swish_with_fused_gradient():
    """swish with a custom gradient whose body is one XLA kernel (built on first use, so that
    TensorFlow is imported only on the TensorFlow backend)."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def swish_gradient(x, upstream):
        sigmoid = tf.sigmoid(x)
        return upstream * sigmoid * (1.0 + x * (1.0 - sigmoid))

    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def swish(x):
        return tf.nn.silu(x), lambda upstream: swish_gradient(x, upstream)

    return swish
