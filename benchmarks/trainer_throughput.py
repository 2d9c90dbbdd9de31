"""End-to-end images/s of a Noisy Student training stage against the bare model step.

The stage is the CIFAR-10 recipe's student (configs/cifar10_4000.cfg): small-image B0 at half
width and depth, 32x32, 128 labeled + 128 pseudo-labeled images per step, RandAugment N=2 M=5
on both, soft pseudo labels, EMA, checkpoints and TensorBoard summaries, reading PNG TFRecords of
the bundled sample (its unlabeled images get random soft labels: the rate does not depend on
them). The peer is the same model's bare training step (forward on 256 images, loss, gradient,
the same RMSProp) on tensors already in memory, measured in the same process. Images/s counts
labeled + unlabeled images.

The trainer's steady-state rate is taken from two runs of different length in fresh model
directories, (steps_long - steps_short) * images / (time_long - time_short), so tracing and
start-up cancel out while per-step work (input, EMA, summaries, checkpoints) stays in.

    python benchmarks/trainer_throughput.py                  # ~4 min on 2 CPU cores
    python benchmarks/trainer_throughput.py --steps 40,200   # longer, steadier
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from efficientnet_tf import create_model  # noqa: E402
from noisy_student.assets import SAMPLE_DIR  # noqa: E402
from noisy_student.data import pipelines, records  # noqa: E402
from noisy_student.training import TrainConfig, train  # noqa: E402
from noisy_student.training.optimizer import TF1RMSprop  # noqa: E402

SAMPLE = SAMPLE_DIR
BATCH = 128
RANDAUG = dict(randaug_num_layers=2, randaug_magnitude=5)


def model_fn():
    return create_model(
        "b0", classes=10, small_images=True, width_coefficient=0.5, depth_coefficient=0.5,
        input_shape=(32, 32, 3), classifier_activation=None,
    )


def write_pseudo_labels(directory: str) -> str:
    """The sample's unlabeled images with random soft labels, as pseudo-labeled records."""
    rng = np.random.default_rng(0)
    for path in sorted(glob.glob(os.path.join(SAMPLE, "unlabeled-*"))):
        out = os.path.join(directory, "pseudo-" + os.path.basename(path))
        with tf.io.TFRecordWriter(out) as writer:
            for record in tf.data.TFRecordDataset(path):
                image = records.parse_unlabeled(record)["image"].numpy()
                probs = rng.dirichlet(np.ones(10)).astype(np.float32)
                writer.write(records.encode_pseudo_labeled(image, probs, "float16"))
    return os.path.join(directory, "pseudo-*")


def data_fns(pseudo_pattern: str):
    def labeled(batch_size, context=None):
        return pipelines.labeled_dataset(
            os.path.join(SAMPLE, "train-*"), image_size=32, batch_size=batch_size,
            training=True, num_classes=10, label_offset=1, small_images=True,
            input_context=context, **RANDAUG,
        )

    def pseudo(batch_size, context=None):
        return pipelines.pseudo_labeled_dataset(
            pseudo_pattern, image_size=32, batch_size=batch_size, num_classes=10,
            training=True, small_images=True, input_context=context, **RANDAUG,
        )

    return labeled, pseudo


def trainer_seconds(steps: int, pseudo_pattern: str, workdir: str, steps_per_loop: int) -> float:
    labeled, pseudo = data_fns(pseudo_pattern)
    config = TrainConfig(
        batch_size=BATCH, num_train_examples=4000, train_steps=steps, unlabel_ratio=1.0,
        moving_average_decay=0.999, weight_decay=1e-4, checkpoint_every=200,
        summary_every=100, steps_per_loop=steps_per_loop, quiet=True,
    )
    model_dir = tempfile.mkdtemp(dir=workdir)
    start = time.perf_counter()
    train(model_fn, config, labeled, model_dir, unlabeled_data=pseudo)
    return time.perf_counter() - start


def bare_step_rate(steps: int, repeats: int) -> float:
    model = model_fn()
    optimizer = TF1RMSprop(0.008, rho=0.9, momentum=0.9, epsilon=1e-3)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (2 * BATCH, 32, 32, 3)).astype("float32"))
    targets = tf.constant(rng.dirichlet(np.ones(10), 2 * BATCH).astype("float32"))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * 2 * BATCH / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="20,120", help="short,long trainer runs (steps)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the bare step")
    parser.add_argument("--steps_per_loop", type=int, default=10,
                        help="trainer steps per tf.function call (the CLI's default is 10)")
    args = parser.parse_args()
    short, long = (int(s) for s in args.steps.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        pseudo_pattern = write_pseudo_labels(workdir)
        bare = bare_step_rate(10, args.repeats)
        t_short = trainer_seconds(short, pseudo_pattern, workdir, args.steps_per_loop)
        t_long = trainer_seconds(long, pseudo_pattern, workdir, args.steps_per_loop)
        bare_after = bare_step_rate(10, args.repeats)
    trainer = (long - short) * 2 * BATCH / (t_long - t_short)
    bare = (bare + bare_after) / 2
    print(f"trainer stage ({short} and {long} steps: {t_short:.1f} s, {t_long:.1f} s; "
          f"{args.steps_per_loop} steps per loop)")
    print(f"{'case':<38}{'img/s':>10}")
    print(f"{'bare model step, batch 256':<38}{bare:>10.1f}")
    print(f"{'trainer end to end, 128 + 128':<38}{trainer:>10.1f}")
    print(f"trainer / bare step: {trainer / bare:.2f}")


if __name__ == "__main__":
    main()
