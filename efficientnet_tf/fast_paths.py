"""One switch for the package's faster computations of standard layers on TensorFlow.

`FusedBatchNormalization`, `PointwiseConv2D`, `SmallMapDepthwiseConv2D` and `FusedActivation`
compute the same function as Keras' own layers, in fewer or cheaper TensorFlow ops. They round
differently (up to about 1e-4 of the logits' scale after a whole EfficientNet);
`keras_computation()` turns them all off, e.g. to compare outputs with keras.applications bit
for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

_enabled = True


def active() -> bool:
    """True when the fast paths may run: the Keras backend is TensorFlow (where they were
    measured) and no `keras_computation()` block is open."""
    return _enabled and keras.backend.backend() == "tensorflow"


@contextlib.contextmanager
def keras_computation() -> Iterator[None]:
    """Within this block every layer computes exactly as its Keras parent class. It applies to
    eager calls and to functions traced within the block."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous
