"""Where do the ablation grid's teachers differ? For each kept teacher (the `.keras` files beside
the grid's results): top-1 on its 4,000 labeled training images and on the 10,000 test images,
per-class test top-1, test cross-entropy, and test top-1 after recomputing every batch norm's
moving statistics on the labeled images (one pass, exact mean of the batch statistics, no
stochastic depth).

Teachers that all fit their labeled images perfectly but differ on the test images, uniformly
over classes, and whose ranking survives the batch-norm recomputation, differ in how they
generalize (an over-fitting regime), not in their batch-norm statistics or in one class
(issue #29, item 2: the teachers' spread).

    python benchmarks/teacher_generalization.py --seeds=1,2,3
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from provenance import run_facts  # noqa: E402
from self_training_cifar10 import CIFAR_DIR, load_npz, split_arrays  # noqa: E402

from noisy_student.atomic_io import write_json_atomic  # noqa: E402

TEACHERS = os.path.join(HERE, "results", "cifar10_4000_ablations_teachers")
RESULTS = os.path.join(HERE, "results", "cifar10_4000_teacher_generalization.json")
BATCH = 500


def logits(model, images: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(model(images[i:i + BATCH].astype("float32"),
                                            training=False))
                           for i in range(0, len(images), BATCH)])


def scores(model, images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1, mean cross-entropy and per-class top-1."""
    z = logits(model, images)
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    hit = log_probs.argmax(axis=1) == labels
    return {"top1": float(hit.mean()),
            "cross_entropy": float(-log_probs[np.arange(len(labels)), labels].mean()),
            "per_class_top1": [float(hit[labels == c].mean()) for c in range(num_classes)]}


def recompute_batch_norm(model, images: np.ndarray) -> None:
    """Every batch norm's moving statistics become the mean of its batch statistics over one
    pass of `images` (training-mode calls with stochastic depth switched off)."""
    import keras

    from efficientnet_tf.blocks import StochasticDepth

    layers = list(model._flatten_layers())
    norms = [layer for layer in layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in layers if isinstance(layer, StochasticDepth)]
    rates = [layer.rate for layer in drops]
    for layer in drops:
        layer.rate = 0.0
    try:
        for k, start in enumerate(range(0, len(images), BATCH), start=1):
            for layer in norms:
                layer.momentum = (k - 1) / k  # running mean of the batch statistics
            model(images[start:start + BATCH].astype("float32"), training=True)
    finally:
        for layer, rate in zip(drops, rates, strict=True):
            layer.rate = rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--teachers", default=TEACHERS,
                        help="Folder of the kept teachers, seed<N>.keras.")
    parser.add_argument("--cifar_dir", default=CIFAR_DIR, help="The uint8 npz shards.")
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    paths = {seed: os.path.join(args.teachers, f"seed{seed}.keras") for seed in seeds}
    missing = [path for path in paths.values() if not os.path.exists(path)]
    if missing:
        parser.error(f"no kept teacher {missing}; train it with benchmarks/cifar10_ablations.py")

    import keras

    import efficientnet_tf  # noqa: F401  (registers the model's classes for loading)

    train_x, train_y, _ = split_arrays(args.cifar_dir)  # the recipe's 4,000 labeled images
    test_x, test_y, class_names = load_npz(os.path.join(args.cifar_dir, "cifar10_test.npz"))
    rows = []
    for seed, path in paths.items():
        model = keras.saving.load_model(path, compile=False)
        row = {"seed": seed, "labeled": scores(model, train_x, train_y, len(class_names)),
               "test": scores(model, test_x, test_y, len(class_names))}
        recompute_batch_norm(model, train_x)
        row["test_after_batch_norm_recompute"] = scores(model, test_x, test_y, len(class_names))
        rows.append(row)
        print(f"seed {seed}: labeled {row['labeled']['top1']:.2%}  test {row['test']['top1']:.2%}"
              f"  after batch-norm recompute "
              f"{row['test_after_batch_norm_recompute']['top1']:.2%}", flush=True)
    result = {**run_facts(), "class_names": class_names, "labeled_images": len(train_y),
              "test_images": len(test_y), "rows": rows}
    write_json_atomic(args.results, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
