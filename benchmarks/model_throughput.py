"""Throughput of our EfficientNet-B0 against keras.applications.EfficientNetB0, same run.

Prints images/second for each case and the ratio ours/keras:
  - training at 32x32, batch 128
  - training at 224x224, batch 32
  - inference at 224x224, batch 32
Both models are built with weights=None, the same optimizer and loss; XLA is off on CPU (it is
5-7x slower there for depthwise convolutions) and on elsewhere unless --jit says otherwise.
Warm-up steps are excluded; each figure is the median over --repeats timed runs, and the two
models alternate so that background load hits both alike.

    python benchmarks/model_throughput.py             # full run (~3-5 min on 2 CPU cores)
    python benchmarks/model_throughput.py --quick     # fewer steps
    python benchmarks/model_throughput.py --op_profile --cases 1   # + where the time goes
    KERAS_BACKEND=jax python benchmarks/model_throughput.py   # other backends (no TF needed)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from efficientnet_tf import EfficientNetB0  # noqa: E402

CASES = (  # (label, training, resolution, batch)
    ("train 32x32 b128", True, 32, 128),
    ("train 224x224 b32", True, 224, 32),
    ("infer 224x224 b32", False, 224, 32),
)


def build(kind: str, resolution: int, jit: bool, training: bool) -> keras.Model:
    shape = (resolution, resolution, 3)
    if kind == "ours":
        model = EfficientNetB0(weights=None, input_shape=shape, classes=1000)
    else:
        model = keras.applications.EfficientNetB0(weights=None, input_shape=shape, classes=1000)
    if training:
        model.compile(
            optimizer=keras.optimizers.RMSprop(1e-3, rho=0.9, momentum=0.9, epsilon=1e-3),
            loss="categorical_crossentropy",
            jit_compile=jit,
        )
    return model


def random_batch(batch: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random pixels in 0..255 and one-hot labels of 1,000 classes."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, resolution, resolution, 3)).astype("float32")
    return x, keras.utils.to_categorical(rng.integers(0, 1000, batch), 1000)


def images_per_second(model, training: bool, batch: int, resolution: int, steps: int) -> float:
    x, y = random_batch(batch, resolution)
    start = time.perf_counter()
    for _ in range(steps):
        if training:
            model.train_on_batch(x, y)
        else:
            model.predict_on_batch(x)
    return steps * batch / (time.perf_counter() - start)


def profile(resolution: int, batch: int, repeats: int) -> None:
    """Where the training step's time goes, by ablation of our B0: the share of the forward
    pass, of squeeze-excite, of the depthwise kernels (replaced by 1x1) and of batch-norm
    training statistics (the same step with BN in inference mode)."""
    from efficientnet_tf import DEFAULT_BLOCKS, EfficientNet

    no_se = tuple(b.replace("_se0.25", "") for b in DEFAULT_BLOCKS)
    k1 = tuple(b.replace("_k3_", "_k1_").replace("_k5_", "_k1_") for b in DEFAULT_BLOCKS)
    shape = (resolution, resolution, 3)
    variants = {
        "full train step": dict(),
        "without squeeze-excite": dict(blocks=no_se),
        "depthwise kernels 1x1": dict(blocks=k1),
    }
    rates = {}
    for label, kwargs in variants.items():
        model = EfficientNet(1.0, 1.0, resolution, input_shape=shape, **kwargs)
        model.compile(optimizer="rmsprop", loss="categorical_crossentropy", jit_compile=False)
        images_per_second(model, True, batch, resolution, 1)
        rates[label] = statistics.median(
            images_per_second(model, True, batch, resolution, 2) for _ in range(repeats)
        )
        if label == "full train step":
            images_per_second(model, False, batch, resolution, 1)
            rates["forward only (inference)"] = statistics.median(
                images_per_second(model, False, batch, resolution, 2) for _ in range(repeats)
            )
            model.trainable = True
            for layer in model._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False  # frozen BN runs in inference mode
            model.compile(optimizer="rmsprop", loss="categorical_crossentropy", jit_compile=False)
            images_per_second(model, True, batch, resolution, 1)
            rates["BN frozen (no batch statistics)"] = statistics.median(
                images_per_second(model, True, batch, resolution, 2) for _ in range(repeats)
            )
        keras.backend.clear_session()
    full = 1.0 / rates["full train step"]
    print(f"profile at {resolution}x{resolution}, batch {batch} (ms per image; share of step)")
    for label, rate in rates.items():
        ms = 1000.0 / rate
        saved = full - 1.0 / rate
        note = "" if label == "full train step" else f"   saves {100 * saved / full:5.1f}%"
        print(f"  {label:<34}{ms:8.1f} ms{note}")


def op_profile(model, batch: int, resolution: int, steps: int = 3, top: int = 12) -> None:
    """TensorFlow profiler trace of `steps` training steps: time per op type summed over the
    executor threads (both cores), per step, largest first."""
    import collections
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    x, y = random_batch(batch, resolution)
    model.train_on_batch(x, y)
    with tempfile.TemporaryDirectory() as trace_dir:
        tf.profiler.experimental.start(trace_dir)
        for _ in range(steps):
            model.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    per_type: collections.Counter[str] = collections.Counter()
    for plane in (p for p in space.planes if p.name.startswith("/host:CPU")):
        for line in (line for line in plane.lines if line.name.startswith("tf_Compute")):
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    per_type[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9 / steps
    total = sum(per_type.values())
    print(f"  op time per step {total:.0f} ms (both cores); largest op types:")
    for op_type, ms in per_type.most_common(top):
        print(f"    {op_type:<48}{ms:8.1f} ms {100 * ms / total:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer steps per repeat")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--cases", default="all", help="comma-separated case indices, e.g. 0,2")
    parser.add_argument("--profile", action="store_true", help="also break down our B0's step")
    parser.add_argument("--op_profile", action="store_true",
                        help="also print both models' op-type profile for the training cases")
    args = parser.parse_args()
    on_cpu = keras.backend.backend() != "jax" or "cpu" in str(_jax_device()).lower()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        on_cpu = not tf.config.list_physical_devices("GPU")
    jit = {"on": True, "off": False}.get(args.jit, not on_cpu)
    chosen = range(len(CASES)) if args.cases == "all" else map(int, args.cases.split(","))
    print(f"backend={keras.backend.backend()} jit_compile={jit} repeats={args.repeats}")
    print(f"{'case':<20}{'ours img/s':>12}{'keras img/s':>13}{'ours/keras':>12}")
    for index in chosen:
        label, training, resolution, batch = CASES[index]
        steps = 2 if (args.quick or resolution > 100) else 8
        if not on_cpu:
            steps *= 10
        models = {kind: build(kind, resolution, jit, training) for kind in ("ours", "keras")}
        for model in models.values():  # warm-up: tracing and first-step allocation
            images_per_second(model, training, batch, resolution, 1)
        rates: dict[str, list[float]] = {"ours": [], "keras": []}
        for _ in range(args.repeats):
            for kind, model in models.items():
                rates[kind].append(images_per_second(model, training, batch, resolution, steps))
        ours, theirs = (statistics.median(rates[k]) for k in ("ours", "keras"))
        print(f"{label:<20}{ours:>12.1f}{theirs:>13.1f}{ours / theirs:>12.2f}", flush=True)
        if args.op_profile and training and keras.backend.backend() == "tensorflow":
            for kind, model in models.items():
                print(f"{kind}, {label}:")
                op_profile(model, batch, resolution)
        del models
        keras.backend.clear_session()
    if args.profile:
        profile(224, 16, args.repeats)


def _jax_device():
    if keras.backend.backend() != "jax":
        return "cpu"
    import jax

    return jax.devices()[0]


if __name__ == "__main__":
    main()
