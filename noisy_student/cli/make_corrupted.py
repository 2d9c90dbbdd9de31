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

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402
from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS  # noqa: E402

FLAGS = flags.FLAGS
PROGRAM = "noisy-student-make-corrupted"


def define_flags() -> None:
    """The command-line flags (defined when the tool runs, not on import)."""
    flag_groups.define_traceback_flag()
    flags.DEFINE_string("input", None, "Labeled TFRecord file pattern (image/encoded + "
                        "image/class/label).")
    flags.DEFINE_string("output_dir", None, "Where <corruption>/<severity>/ folders are written.")
    flags.DEFINE_list("corruptions", list(IMAGENET_C_CORRUPTIONS), "Corruptions to write.")
    flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Severities (1-5) to write.")
    flags.DEFINE_string("split", "validation", "File name prefix of the written shards.")
    flags.DEFINE_integer("images_per_shard", 1024, "Records per output file.", lower_bound=1)
    flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "Encoding of corrupted images "
                      "(jpeg = quality 85, as the ImageNet-C release).")
    flags.DEFINE_integer("seed", 0, "Seed of the random corruptions.")
    flags.DEFINE_integer("max_images", None, "Use only the first N input records.",
                         lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}")
    if not FLAGS.input or not FLAGS.output_dir:
        raise app.UsageError("--input and --output_dir are required")
    if not FLAGS.corruptions or not FLAGS.severities:
        raise app.UsageError("--corruptions and --severities must name at least one each")
    corruptions = flag_groups.names_flag("--corruptions", FLAGS.corruptions,
                                         IMAGENET_C_CORRUPTIONS)
    severities = flag_groups.severities_flag(FLAGS.severities)
    from noisy_student.evaluation.corruptions import make_corrupted

    result = make_corrupted(
        FLAGS.input, FLAGS.output_dir, corruptions=corruptions, severities=severities,
        split=FLAGS.split, images_per_shard=FLAGS.images_per_shard,
        image_format=FLAGS.image_format, seed=FLAGS.seed, max_images=FLAGS.max_images,
        progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"{result['num_images']} images: {len(result['written'])} files written, "
          f"{len(result['skipped_existing'])} already there, in {FLAGS.output_dir}")


def run() -> None:
    """Console-script entry point."""
    # A missing imagecorruptions package is an expected failure too (its message says what to
    # install).
    run_tool(__name__, define_flags, main, PROGRAM, also=(ImportError,))


if __name__ == "__main__":
    run()
