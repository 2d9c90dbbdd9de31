"""Each TensorFlow fast path of efficientnet_tf against Keras' own computation, layer by layer.

For every layer kind at EfficientNet-B0's shapes (32x32 input at batch 128, 224x224 at batch
32), times forward + backward (gradients of the input and of the weights) of one layer as a
`tf.function`, once with the fast path and once traced under `keras_computation()`, alternating,
best of --repeats, and prints the ratio keras / fast (above 1: the fast path is faster).
`efficientnet_tf.convolutions.MAX_MIXING_PIXELS` comes from such measurements: the row marked "above
threshold" is a map where the layer keeps the native kernel, timed here with the threshold
lifted, so that it can be re-checked on another machine.

    python benchmarks/fast_paths.py               # ~2 min on 2 CPU cores
    python benchmarks/fast_paths.py --kinds depthwise,swish
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from efficientnet_tf import (  # noqa: E402
    FusedActivation,
    FusedBatchNormalization,
    PointwiseConv2D,
    SmallMapDepthwiseConv2D,
    convolutions,
    keras_computation,
)

# (batch, height, width, channels[, kernel, strides | output channels])
CASES = {
    "pointwise": [
        (128, 2, 2, 480, 80), (128, 1, 1, 1152, 192), (128, 1, 1, 320, 1280),
        (128, 8, 8, 24, 144), (32, 112, 112, 16, 96), (32, 56, 56, 144, 24),
        (32, 28, 28, 40, 240), (32, 7, 7, 320, 1280),
    ],
    "depthwise": [
        (128, 2, 2, 480, 3, 1), (128, 2, 2, 672, 5, 1), (128, 2, 2, 672, 5, 2),
        (128, 1, 1, 1152, 5, 1), (128, 1, 1, 1152, 3, 1), (128, 4, 4, 240, 3, 2),
    ],
    "swish": [
        (32, 112, 112, 96), (32, 56, 56, 144), (32, 14, 14, 672), (32, 7, 7, 1152),
        (128, 16, 16, 96), (128, 2, 2, 672), (128, 4, 4, 240),
    ],
    "batch_norm": [
        (32, 112, 112, 96), (32, 14, 14, 480), (128, 8, 8, 144), (128, 2, 2, 672),
    ],
}


def make_layer(kind: str, case: tuple):
    if kind == "pointwise":
        return PointwiseConv2D(case[4], use_bias=False)
    if kind == "depthwise":
        return SmallMapDepthwiseConv2D(case[4], strides=case[5], padding="same", use_bias=False)
    if kind == "swish":
        return FusedActivation("swish")
    return FusedBatchNormalization(momentum=0.99, epsilon=1e-3)


def training_step(layer):
    """Forward + backward of one layer (training mode where the layer takes it)."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if isinstance(layer, FusedActivation | FusedBatchNormalization):
                y = layer(x, training=True)
            else:
                y = layer(x)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, *layer.trainable_weights])

    return step


def seconds_per_call(step, x, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        step(x)
    return (time.perf_counter() - start) / calls


@contextlib.contextmanager
def mixing_on_any_map():
    """The depthwise mixing product applies at any map size while functions are traced here."""
    saved, convolutions.MAX_MIXING_PIXELS = convolutions.MAX_MIXING_PIXELS, 10**9
    try:
        yield
    finally:
        convolutions.MAX_MIXING_PIXELS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(CASES), help="comma-separated: " +
                        ", ".join(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer':<12}{'shape':<34}{'fast ms':>9}{'keras ms':>10}{'keras/fast':>12}")
    for kind in args.kinds.split(","):
        for case in CASES[kind]:
            shape = case[:4]
            x = tf.constant(rng.normal(size=shape).astype("float32"))
            layer = make_layer(kind, case)
            layer.build(shape)
            native = isinstance(layer, SmallMapDepthwiseConv2D) and (
                layer._mixing_taps(shape) is None
            )
            note = "  above threshold" if native else ""
            with mixing_on_any_map():
                fast = training_step(layer)
                fast(x)
            with keras_computation():
                keras_step = training_step(layer)
                keras_step(x)  # traced here: Keras' ops stay in this function
            calls = max(2, int(3e7 / np.prod(shape)))
            times = {"fast": [], "keras": []}
            for _ in range(args.repeats):
                times["fast"].append(seconds_per_call(fast, x, calls))
                times["keras"].append(seconds_per_call(keras_step, x, calls))
            fast_ms, keras_ms = (1000 * min(times[k]) for k in ("fast", "keras"))
            print(f"{kind:<12}{str(case):<34}{fast_ms:>9.2f}{keras_ms:>10.2f}"
                  f"{keras_ms / fast_ms:>12.2f}{note}", flush=True)


if __name__ == "__main__":
    main()
