"""Numeric precision and XLA choices for training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Sets the global Keras dtype policy for models built inside the block, then restores it.
    Mixed policies keep variables in float32; the trainer casts logits to float32."""
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; use one of {PRECISIONS}.")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer: keras.optimizers.Optimizer, precision: str):
    """float16 needs dynamic loss scaling; bfloat16 and float32 do not."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def has_accelerator() -> bool:
    return any(d.device_type in ("GPU", "TPU") for d in tf.config.list_logical_devices())


def resolve_jit_compile(requested: bool | None, strategy: tf.distribute.Strategy) -> bool:
    """XLA for the per-replica step. Default (None): on for a single GPU, off on CPU (XLA is
    5-7x slower for depthwise convolutions on CPU) and off under multi-replica GPU strategies
    (as Keras does); TPUStrategy compiles everything with XLA anyway, so no extra flag there."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    if requested is not None:
        return bool(requested)
    return has_accelerator() and strategy.num_replicas_in_sync == 1
