"""Pseudo-label targets from a teacher's outputs: the one rule that the trainer (a teacher in
the student's step), labeling (stored distributions) and the pseudo-labeled pipeline (stored
distributions sharpened at read time) share."""

from __future__ import annotations

import tensorflow as tf


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
