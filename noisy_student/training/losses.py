"""Loss pieces of the recipe: label smoothing, cross-entropy, L2 weight decay without batch norm,
pseudo-label targets from teacher logits (noisy_student.targets). All computed in float32
(logits are cast first)."""

from __future__ import annotations

import keras
import tensorflow as tf

from noisy_student.targets import teacher_targets

__all__ = ["batch_norm_layers", "cross_entropy_sum", "l2_penalty", "smooth_labels",
           "teacher_targets", "weight_decay_variables"]

REFERENCE_BN_NAME = "batch_normalization"


def smooth_labels(one_hot: tf.Tensor, smoothing: float) -> tf.Tensor:
    """y * (1 - s) + s / K, as tf.losses.softmax_cross_entropy(label_smoothing=s)."""
    if smoothing <= 0:
        return one_hot
    num_classes = tf.cast(tf.shape(one_hot)[-1], one_hot.dtype)
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


def cross_entropy_sum(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Sum over the batch of -sum_k target_k * log_softmax(logits)_k (float32)."""
    logits = tf.cast(logits, tf.float32)
    targets = tf.cast(targets, tf.float32)
    return -tf.reduce_sum(targets * tf.nn.log_softmax(logits, axis=-1))


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer, including those nested inside custom blocks."""
    # `_flatten_layers` is how Keras itself walks nested layers; there is no public equivalent.
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def weight_decay_variables(model: keras.Model) -> list[keras.Variable]:
    """Trainable weights that get L2 decay: all but batch-norm gamma/beta. A weight is batch norm
    when a BatchNormalization layer owns it, or (the reference's rule, for imported graphs) when
    its path contains 'batch_normalization'."""
    bn_ids = {id(w) for layer in batch_norm_layers(model) for w in layer.weights}
    return [
        w
        for w in model.trainable_weights
        if id(w) not in bn_ids and REFERENCE_BN_NAME not in w.path
    ]


def l2_penalty(variables) -> tf.Tensor:
    """sum of 0.5 * ||w||^2 (tf.nn.l2_loss), float32."""
    if not variables:
        return tf.constant(0.0, tf.float32)
    return tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables])
