"""Corrupted copies (15 ImageNet-C corruptions x 5 severities) of a labeled TFRecord set.

    noisy-student-make-corrupted --input=data/validation-* --output_dir=data/corrupted
    noisy-student-make-corrupted --input=data/validation-* --output_dir=c --corruptions=fog,snow

Writes ``<output_dir>/<corruption>/<severity>/<split>-*`` in our labeled layout; evaluate with
``python -m noisy_student.cli.evaluate --benchmark=corrupted --data=<output_dir> ...``. Rerunning
skips finished files. Logic in ``noisy_student.evaluation.corruptions`` (needs ``pip install
imagecorruptions``).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from noisy_student.cli.runner import run_tool
from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined when the tool runs, not on import)."""
    flags.DEFINE_string("input", None, "Labeled TFRecord file pattern (image/encoded + "
                        "image/class/label).")
    flags.DEFINE_string("output_dir", None, "Where <corruption>/<severity>/ folders are written.")
    flags.DEFINE_list("corruptions", list(IMAGENET_C_CORRUPTIONS), "Corruptions to write.")
    flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Severities (1-5) to write.")
    flags.DEFINE_string("split", "validation", "File name prefix of the written shards.")
    flags.DEFINE_integer("images_per_shard", 1024, "Records per output file.")
    flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of corrupted images "
                      "(jpeg = quality 85, as the ImageNet-C release).")
    flags.DEFINE_integer("seed", 0, "Seed of the random corruptions.")
    flags.DEFINE_integer("max_images", None, "Use only the first N input records.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}")
    if not FLAGS.input or not FLAGS.output_dir:
        raise app.UsageError("--input and --output_dir are required")
    try:
        severities = [int(s) for s in FLAGS.severities]
    except ValueError:
        raise app.UsageError(f"--severities must be integers, got {FLAGS.severities}") from None
    from noisy_student.evaluation.corruptions import make_corrupted

    result = make_corrupted(
        FLAGS.input, FLAGS.output_dir, corruptions=FLAGS.corruptions, severities=severities,
        split=FLAGS.split, images_per_shard=FLAGS.images_per_shard,
        image_format=FLAGS.image_format, seed=FLAGS.seed, max_images=FLAGS.max_images,
        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{result['num_images']} images: {len(result['written'])} files written, "
          f"{len(result['skipped_existing'])} already there, in {FLAGS.output_dir}")


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "noisy-student-make-corrupted")


if __name__ == "__main__":
    run()
