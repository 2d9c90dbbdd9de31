"""What training measures: the per-step metrics, their averages over an epoch, and the in-graph
count of rows whose argmax agrees (training accuracy, pseudo-label agreement, the EMA top-1)."""

from __future__ import annotations

import tensorflow as tf

# Per-step training metrics. `accuracy` is on the labeled part of the batch (as trained: noised
# for students); `unlabeled_agreement` is the fraction of pseudo-labeled images whose student
# argmax equals the target's (students only).
METRICS = (
    "loss",
    "labeled_loss",
    "unlabeled_loss",
    "weight_decay",
    "accuracy",
    "unlabeled_agreement",
)
STUDENT_ONLY_METRICS = ("unlabeled_loss", "unlabeled_agreement")


def count_equal_argmax(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """How many rows have the same argmax in logits and targets (float32)."""
    equal = tf.equal(tf.argmax(logits, -1), tf.argmax(targets, -1))
    return tf.reduce_sum(tf.cast(equal, tf.float32))


class EpochAverage:
    """Step-weighted averages of the training metrics over the current epoch; `last` holds
    the averages of the last closed epoch (or of the partial one if none closed yet)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.last: dict[str, float] = {}
        self._sums = dict.fromkeys(names, 0.0)
        self._steps = 0

    def add(self, metrics: dict[str, float], num_steps: int) -> None:
        for name in self.names:
            self._sums[name] += metrics[name] * num_steps
        self._steps += num_steps

    def close(self) -> dict[str, float]:
        """Ends the epoch and returns its averages."""
        if self._steps:
            self.last = {name: total / self._steps for name, total in self._sums.items()}
        self._sums = dict.fromkeys(self.names, 0.0)
        self._steps = 0
        return self.last
