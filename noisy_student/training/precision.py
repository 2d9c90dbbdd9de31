"""Numeric precision and XLA choices for training."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from noisy_student.config import PRECISIONS


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
    5-7x slower for depthwise convolutions on CPU). TPUStrategy compiles the whole step with XLA
    anyway, so no extra flag there. Multi-replica GPU/CPU strategies run without it, as in Keras:
    a jit-compiled replica function cannot reach the other replicas' variables."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return False
    if strategy.num_replicas_in_sync > 1:
        if requested:
            raise ValueError(
                "jit_compile=True is not supported with a multi-replica Mirrored/MultiWorker "
                "strategy (XLA cannot access other replicas' variables); leave it unset."
            )
        return False
    if requested is not None:
        return bool(requested)
    return has_accelerator()
