"""How good are a CIFAR-10 teacher's pseudo labels? Accuracy against the true labels that the
4,000-label benchmark drops, with and without averaging over the mirror image.

Reads the shared uint8 npz shards (the same split as `self_training_cifar10.py`: the 46,000
unlabeled train images and the 10,000 test images), labels them with `make_label_fn` (what the
loop's labeling stage runs, inference mode, T=1) single-view and with `flip_average=True`, and
prints per split: top-1 of the argmax, mean confidence, images kept at the confidence threshold
and the top-1 among them, and the mean negative log-likelihood of the true class.

    python benchmarks/pseudo_label_accuracy.py --model=runs/u2_seed2/teacher/model.keras
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from self_training_cifar10 import CIFAR_DIR, load_npz, split_train  # noqa: E402

NUM_TRAIN_SHARDS = 5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="A .keras file, a model directory or a run directory (logits out).")
    parser.add_argument("--iteration", type=int, default=None,
                        help="With a run directory: 0 = teacher, N = student N (default: last).")
    parser.add_argument("--cifar_dir", default=CIFAR_DIR, help="The CIFAR-10 npz shards.")
    parser.add_argument("--min_threshold", type=float, default=0.3,
                        help="Confidence threshold for the 'kept' columns (the flagfile's).")
    parser.add_argument("--batch_size", type=int, default=500)
    return parser.parse_args()


def splits(cifar_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'unlabeled': (images, true labels), 'test': (...)} as the benchmark splits them."""
    shards = [load_npz(os.path.join(cifar_dir, f"cifar10_train_{i}.npz"))
              for i in range(NUM_TRAIN_SHARDS)]
    pairs = list(zip(shards, split_train([labels for _, labels, _ in shards]), strict=True))
    unlabeled = (np.concatenate([images[u] for (images, _, _), (_, u) in pairs]),
                 np.concatenate([labels[u] for (_, labels, _), (_, u) in pairs]))
    test_images, test_labels, _ = load_npz(os.path.join(cifar_dir, "cifar10_test.npz"))
    return {"unlabeled": unlabeled, "test": (test_images, test_labels)}


def label_quality(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Top-1, mean confidence, kept count, top-1 of the kept, NLL of the true class."""
    correct = probs.argmax(axis=1) == labels
    confidence = probs.max(axis=1)
    kept = confidence >= threshold
    true_prob = probs[np.arange(len(labels)), labels]
    return {"top1": correct.mean(), "confidence": confidence.mean(), "kept": int(kept.sum()),
            "kept_top1": correct[kept].mean() if kept.any() else float("nan"),
            "nll": -np.log(np.maximum(true_prob, 1e-12)).mean()}


def main() -> int:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from noisy_student.evaluation.loading import load_model
    from noisy_student.pseudo_labels.labeling import make_label_fn

    model, info = load_model(args.model, iteration=args.iteration)
    print(f"model: {info.get('model_dir', args.model)} ({info['weights']} weights)")
    print(f"| split | labels | top-1 | mean confidence | kept (>= {args.min_threshold}) | "
          "top-1 of kept | NLL | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (images, labels) in splits(args.cifar_dir).items():
        for flip in (False, True):
            label_fn = make_label_fn(model, from_logits=True, flip_average=flip)
            start = time.time()
            probs = np.concatenate([
                label_fn(tf.constant(images[i:i + args.batch_size], tf.float32)).numpy()
                for i in range(0, len(images), args.batch_size)])
            q = label_quality(probs, labels, args.min_threshold)
            print(f"| {name} | {'flip-averaged' if flip else 'single view'} | "
                  f"{100 * q['top1']:.2f}% | {q['confidence']:.3f} | {q['kept']:,} | "
                  f"{100 * q['kept_top1']:.2f}% | {q['nll']:.3f} | {time.time() - start:.0f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
