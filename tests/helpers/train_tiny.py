"""Trains a tiny EfficientNet on fixed synthetic 32x32 data with the public training API
(used by the subprocess tests: distribution, kill-and-resume).

python tests/helpers/train_tiny.py --model_dir D --out O [--strategy default|mirrored|multi_worker]
    [--devices N] [--steps S] [--checkpoint_every K] [--seconds_per_batch T] [--compare_default]

Writes O.json (start/final step, metrics) and O.npz (initial weights, EMA weights and the raw
trained weights of the latest checkpoint). With --compare_default it then also trains the same
run under the default strategy in model_dir + '_default' and writes O_default.*.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BLOCKS = ("r1_k3_s11_e1_i32_o16_se0.25", "r1_k3_s22_e6_i16_o24_se0.25")
GLOBAL_BATCH = 16


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--checkpoint_every", type=int, default=3)
    parser.add_argument("--seconds_per_batch", type=float, default=0.0)
    parser.add_argument("--compare_default", action="store_true")
    return parser.parse_args()


def load_data(count: int = 64):
    """Fixed pseudo-random images in 0..255 and one-hot labels (same in every process)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (count, 32, 32, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, count)]
    return images, labels


def make_dataset_fn(images, labels, seconds_per_batch: float):
    """Per-replica batches in a fixed order: pipeline i takes every n-th batch, so each step's
    global batch holds the same images under any replica split."""

    def dataset_fn(batch_size, context):
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat()
        dataset = dataset.batch(batch_size, drop_remainder=True)
        dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        if seconds_per_batch:

            def slow(x, y):
                tf.py_function(lambda: time.sleep(seconds_per_batch), [], [])
                return x, y

            dataset = dataset.map(slow)
        return dataset

    return dataset_fn


def model_fn():
    import keras

    from efficientnet_tf import create_model

    keras.utils.set_random_seed(1)
    return create_model(
        "b0",
        width_coefficient=0.25,
        blocks=BLOCKS,
        small_images=True,
        input_shape=(32, 32, 3),
        classes=10,
        classifier_activation=None,
        dropout_rate=0.0,
        stochastic_depth_rate=0.0,
        sync_batch_norm=True,
    )


def run(args, strategy, model_dir: str, out: str) -> None:
    from noisy_student.training import TrainConfig, train

    images, labels = load_data()
    config = TrainConfig(
        batch_size=GLOBAL_BATCH,
        num_train_examples=len(images),
        train_steps=args.steps,
        base_learning_rate=0.256,
        warmup_epochs=0.5,
        checkpoint_every=args.checkpoint_every,
        summary_every=args.checkpoint_every,
        quiet=True,
    )
    result = train(
        model_fn,
        config,
        make_dataset_fn(images, labels, args.seconds_per_batch),
        model_dir,
        strategy=strategy,
    )
    raw = model_fn()
    tf.train.Checkpoint(model=raw).restore(tf.train.latest_checkpoint(model_dir)).expect_partial()
    arrays = {f"init_{i}": w for i, w in enumerate(model_fn().get_weights())}
    arrays.update({f"ema_{i}": w for i, w in enumerate(result.model.get_weights())})
    arrays.update({f"raw_{i}": w for i, w in enumerate(raw.get_weights())})
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as handle:
        json.dump(
            {"start_step": result.start_step, "step": result.step, "metrics": result.metrics},
            handle,
        )


def main() -> None:
    args = parse_args()
    if args.devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
        )
    from noisy_student.training import make_strategy

    strategy = make_strategy(args.strategy)
    if args.strategy == "mirrored":
        # The CPU devices, not a GPU (none here): one replica per logical CPU.
        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")]
        )
    run(args, strategy, args.model_dir, args.out)
    if args.compare_default:
        run(args, tf.distribute.get_strategy(), args.model_dir + "_default", args.out + "_default")


if __name__ == "__main__":
    main()
