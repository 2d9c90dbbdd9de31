"""Pseudo-label targets from a teacher's outputs: the one rule that the trainer (a teacher in
the student's step), labeling (stored distributions) and the pseudo-labeled pipeline (stored
distributions sharpened at read time) share, and the teacher they run (`inference_teacher`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import keras
import tensorflow as tf

from efficientnet_tf.folding import fold_batch_norm

log = logging.getLogger(__name__)


def inference_teacher(teacher: keras.Model | Callable) -> keras.Model | Callable:
    """The teacher to label with: ``teacher`` with its batch norms folded into its convolutions
    (``efficientnet_tf.fold_batch_norm``: the same function up to float rounding, 1.25x less
    CPU per image for EfficientNet-B0 at 224 px; it holds a second copy of the weights, 1.9 GB
    for L2), or ``teacher`` itself when it cannot be rebuilt (a subclassed model, a custom
    layer without a config, a plain function)."""
    try:
        return fold_batch_norm(teacher)
    except (TypeError, NotImplementedError) as error:
        log.info("The teacher runs with its batch norms unfolded: %s", error)
        return teacher


def teacher_targets(outputs: tf.Tensor, temperature: float = 1.0, hard: bool = False,
                    from_logits: bool = True) -> tf.Tensor:
    """Targets float32 [B, C]: the one-hot of the argmax when `hard`; else softmax(logits / T)
    or, for probabilities p (``from_logits=False``), p^(1/T) renormalized, computed in log
    space (zeros stay zero). No gradient flows into the teacher."""
    outputs = tf.stop_gradient(tf.cast(outputs, tf.float32))
    if hard:
        return tf.one_hot(tf.argmax(outputs, axis=-1), tf.shape(outputs)[-1], dtype=tf.float32)
    if temperature <= 0:
        raise ValueError(f"Soft pseudo labels need a temperature > 0, got {temperature}.")
    logits = outputs if from_logits else tf.math.log(outputs)
    return tf.nn.softmax(logits / temperature, axis=-1)


def teacher_labels(teacher, images: tf.Tensor, temperature: float = 1.0, hard: bool = False,
                   from_logits: bool = True, flip_average: bool = False) -> tf.Tensor:
    """`teacher_targets` of the teacher (inference mode) on NHWC `images`. With `flip_average`,
    the mean of its soft targets on each image and on its horizontal mirror (hard: the one-hot
    of that mean's argmax): test-time augmentation of the labels, not in the reference."""
    outputs = teacher(images, training=False)
    if not flip_average:
        return teacher_targets(outputs, temperature, hard, from_logits)
    mirrored = teacher(tf.reverse(images, axis=[2]), training=False)
    soft_temperature = 1.0 if hard else temperature
    mean = (teacher_targets(outputs, soft_temperature, False, from_logits)
            + teacher_targets(mirrored, soft_temperature, False, from_logits)) / 2
    if hard:
        return tf.one_hot(tf.argmax(mean, axis=-1), tf.shape(mean)[-1], dtype=tf.float32)
    return mean
