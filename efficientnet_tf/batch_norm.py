"""Batch normalization with a TensorFlow fast path for training and inference.

Keras 3 computes batch norm from unfused ops (moments, then normalize), which on a CPU costs
about half of an EfficientNet training step. TensorFlow has one fused kernel that does both in a
single pass, forward and backward. `FusedBatchNormalization` uses it when all of these hold, and
is exactly Keras' `BatchNormalization` otherwise (JAX / PyTorch backends, masks, other ranks or
axes, synchronized statistics across several replicas):

* the Keras backend is TensorFlow (TensorFlow is imported lazily, only then);
* the input is 4-D, normalized over its last axis (NHWC);
* in training (training mode and trainable): the layer is not synchronized, or runs with one
  replica in sync. Forward + backward of one layer is 1.8-3.9x faster than Keras' ops on
  EfficientNet-B0's maps, from 112x112 down to 2x2 (`benchmarks/fast_paths.py`);
* in inference (moving statistics), always: one pass instead of two over the map, 1.13x
  (B0, 224 px) and 1.22x (small-image B0, 32 px) for a whole forward pass (one-off
  measurement, see BUILD.md).

Moving statistics follow the reference's TF1 `BatchNormalization` (fused on 4-D input): the
moving variance is updated with the fused kernel's Bessel-corrected batch variance,
var * n / (n - 1) with n = batch * height * width. Keras' own path (and the reference's
non-fused TPU batch norm) uses the biased variance; the two differ by a factor n / (n - 1)
(1.0006 at 7x7 and batch 32), and only in the moving statistics, never in the normalized output.
With n = 1 the kernel reports a batch variance of 0.
"""

from __future__ import annotations

import keras
from keras import layers

from efficientnet_tf.fast_paths import active as fast_paths_active

PACKAGE = "efficientnet_tf"


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel where it can.

    Same arguments, weights, config and inference math as the Keras layer; see the module
    docstring for when the fused kernel is used.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is None and self._is_nhwc_on_tensorflow(inputs):
            if not (training and self.trainable):
                return self._fused_inference_call(inputs)
            if self._statistics_are_local():
                return self._fused_training_call(inputs)
        return super().call(inputs, training=training, mask=mask)

    def _is_nhwc_on_tensorflow(self, inputs) -> bool:
        return fast_paths_active() and len(inputs.shape) == 4 and self.axis in (-1, 3)

    def _statistics_are_local(self) -> bool:
        """False when batch statistics must be all-reduced across replicas (Keras' path)."""
        if not self.synchronized:
            return True
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        return context is not None and context.num_replicas_in_sync == 1

    def _fused(self, inputs, is_training: bool):
        """TensorFlow's fused kernel in float32: (outputs in the input's dtype, batch mean,
        batch variance); in inference it normalizes with the moving statistics."""
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        scale = self.gamma if self.scale else tf.ones([channels], tf.float32)
        offset = self.beta if self.center else tf.zeros([channels], tf.float32)
        moving = {} if is_training else {
            "mean": tf.cast(self.moving_mean, tf.float32),
            "variance": tf.cast(self.moving_variance, tf.float32),
        }
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(scale, tf.float32), tf.cast(offset, tf.float32), **moving,
            epsilon=self.epsilon, data_format="NHWC", is_training=is_training)
        return tf.cast(outputs, inputs.dtype), mean, variance

    def _fused_inference_call(self, inputs):
        return self._fused(inputs, is_training=False)[0]

    def _fused_training_call(self, inputs):
        outputs, batch_mean, batch_variance = self._fused(inputs, is_training=True)
        self._update_moving(self.moving_mean, batch_mean)
        self._update_moving(self.moving_variance, batch_variance)
        return outputs

    def _update_moving(self, variable, value) -> None:
        decay = self.momentum
        value = keras.ops.cast(value, variable.dtype)
        variable.assign(variable * decay + value * (1.0 - decay))
