"""Is a teacher's final top-1 a stable figure or a noisy end point? Test top-1 of the EMA and the
raw weights of every checkpoint kept in the ablation grid's teachers (the last ones of the
cosine schedule), on the 10,000 CIFAR-10 test images.

If the figures of one seed move by tenths of a point over the last checkpoints while seeds
differ by points, the teachers' spread (issue #29) is between seeds, not evaluation noise.

    python benchmarks/teacher_checkpoints.py --out_dir=runs/cifar10_ablations --seeds=1,2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from provenance import run_facts  # noqa: E402

from noisy_student.atomic_io import write_json_atomic  # noqa: E402

RESULTS = os.path.join(HERE, "results", "cifar10_4000_teacher_checkpoints.json")
# The teacher of configs/cifar10_4000.cfg.
ARCH = {"classes": 10, "small_images": True, "input_shape": (32, 32, 3),
        "classifier_activation": None, "width_coefficient": 0.5, "depth_coefficient": 0.5}


def kept_steps(model_dir: str) -> list[int]:
    return sorted(int(name[len("ckpt-"):-len(".index")]) for name in os.listdir(model_dir)
                  if name.startswith("ckpt-") and name.endswith(".index"))


def single_checkpoint_dir(model_dir: str, step: int) -> str:
    """A temporary folder whose only (hard-linked) checkpoint is `step`."""
    folder = tempfile.mkdtemp()
    for name in os.listdir(model_dir):
        if name.startswith(f"ckpt-{step}."):
            os.link(os.path.join(model_dir, name), os.path.join(folder, name))
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-{step}"\n')
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="runs/cifar10_ablations",
                        help="The ablation grid's --out_dir (seed<N>/teacher/teacher/ckpt-*).")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--npz_dir", default=os.environ.get("CIFAR10_NPZ_DIR",
                                                            "../shared/data/cifar10"))
    parser.add_argument("--results", default=RESULTS)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from efficientnet_tf import create_model
    from noisy_student.training.checkpoints import load_ema_model

    with np.load(os.path.join(args.npz_dir, "cifar10_test.npz")) as data:
        images, labels = data["images"].astype("float32"), data["labels"]

    def top1(model) -> float:
        return float((model.predict(images, batch_size=500, verbose=0).argmax(-1)
                      == labels).mean())

    def build():
        return create_model("b0", **ARCH)

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        model_dir = os.path.join(args.out_dir, f"seed{seed}", "teacher", "teacher")
        for step in kept_steps(model_dir):
            folder = single_checkpoint_dir(model_dir, step)
            try:
                ema = top1(load_ema_model(folder, build))
                raw_model = build()
                tf.train.Checkpoint(model=raw_model).restore(
                    os.path.join(folder, f"ckpt-{step}")).expect_partial()
                raw = top1(raw_model)
            finally:
                shutil.rmtree(folder)
            rows.append({"seed": seed, "step": step, "ema_top1": ema, "raw_top1": raw})
            print(f"seed {seed} step {step}: EMA {ema:.2%}  raw {raw:.2%}", flush=True)
    result = {**run_facts(), "test_images": len(labels), "rows": rows}
    write_json_atomic(args.results, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
