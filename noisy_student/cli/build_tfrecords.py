"""Image folders -> sharded TFRecords in the ImageNet layout.

Labeled input ``INPUT/<class>/*.{jpg,jpeg,png}`` becomes ``<split>-%05d-of-%05d`` files with
``image/encoded`` (the original file bytes, never re-encoded) and ``image/class/label`` (the
index of the class folder in sorted order + ``--label_base``, 1 by default as in ImageNet), plus
``labels.txt`` (``<label> <class name>`` per line). A flat folder ``INPUT/*.{jpg,jpeg,png}``
becomes unlabeled records (``image/encoded`` only).

Images are shuffled with ``--seed`` (the output is deterministic). Every image is decoded once
with TensorFlow's decoders to check it; undecodable ones are skipped and listed in
``<split>.skipped.txt``. Every file is written under a temporary name and renamed when complete.

    noisy-student-build-tfrecords --input_dir=photos/train --output_dir=data --split=train
    noisy-student-build-tfrecords --input_dir=photos/extra --output_dir=data --split=unlabeled
"""

from __future__ import annotations

import dataclasses
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402

# TensorFlow (through noisy_student.data and atomic_io) is imported where it is used, so
# --help and usage errors come at once and without its start-up logs.

PROGRAM = "noisy-student-build-tfrecords"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGES_PER_SHARD = 1024
MODES = ("auto", "labeled", "unlabeled")


@dataclasses.dataclass
class BuildResult:
    """What :func:`build` wrote."""

    mode: str
    paths: list[str]
    num_written: int
    skipped: list[tuple[str, str]]  # (image path, reason)
    class_names: list[str]
    report_path: str
    labels_path: str | None


def _images_in(directory: str) -> list[str]:
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(directory, name)))


def scan_input(input_dir: str, mode: str = "auto"
               ) -> tuple[str, list[str], list[tuple[str, int]]]:
    """Returns (mode, class names, [(image path, class index or -1)]) for an input folder."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not os.path.isdir(input_dir):
        raise FileNotFoundError(f"input directory {input_dir!r} does not exist")
    class_dirs = sorted(name for name in os.listdir(input_dir)
                        if os.path.isdir(os.path.join(input_dir, name))
                        and not name.startswith("."))
    flat = _images_in(input_dir)
    if mode == "auto":
        if class_dirs and flat:
            raise ValueError(
                f"{input_dir!r} holds both images and sub-folders; pass --mode=labeled "
                "(sub-folders are classes) or --mode=unlabeled (only the images at the top)")
        mode = "labeled" if class_dirs else "unlabeled"
    if mode == "unlabeled":
        items = [(path, -1) for path in flat]
        class_dirs = []
    else:
        items = []
        for index, name in enumerate(class_dirs):
            images = _images_in(os.path.join(input_dir, name))
            if not images:
                logging.warning("class folder %r has no %s images", name, IMAGE_EXTENSIONS)
            items.extend((path, index) for path in images)
    if not items:
        layout = "<class>/*" if mode == "labeled" else "*"
        raise ValueError(f"no images found in {input_dir!r} (expected {layout} with an "
                         f"extension in {IMAGE_EXTENSIONS})")
    return mode, class_dirs, items


def check_decodable(data: bytes) -> str | None:
    """None if TensorFlow decodes the bytes as an RGB-convertible image, else the reason."""
    import tensorflow as tf

    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        return str(error).splitlines()[0][:200] or type(error).__name__
    return None


def build(input_dir: str, output_dir: str, *, split: str | None = None, mode: str = "auto",
          num_shards: int = 0, label_base: int = 1, seed: int = 0, num_threads: int = 4,
          progress: bool = True) -> BuildResult:
    """Converts an image folder into sharded TFRecords; see the module docstring."""
    import numpy as np

    from noisy_student.atomic_io import write_text_atomic
    from noisy_student.data import labels_file, records, shards

    mode, class_names, items = scan_input(input_dir, mode)
    split = split or ("train" if mode == "labeled" else "unlabeled")
    order = np.random.default_rng(seed).permutation(len(items))
    items = [items[i] for i in order]
    num_shards = num_shards or math.ceil(len(items) / IMAGES_PER_SHARD)
    skipped: dict[str, str] = {}

    def encode(item: tuple[str, int]) -> bytes | None:
        path, label = item
        with open(path, "rb") as f:
            data = f.read()
        reason = check_decodable(data)
        if reason is not None:
            skipped[path] = reason
            return None
        if mode == "unlabeled":
            return records.encode_unlabeled(data)
        return records.encode_labeled(data, label + label_base)

    logging.info("%s: %d %s images -> %d shards of '%s' in %s", input_dir, len(items), mode,
                 num_shards, split, output_dir)
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(len(items), unit_name="image")
    labels_path = (labels_file.write_labels(output_dir, class_names, label_base)
                   if mode == "labeled" else None)
    paths = shards.write_sharded(output_dir, split, items, num_shards, encode,
                                 num_threads=num_threads,
                                 on_item=(lambda: bar.add(1)) if bar else None)
    skipped_list = sorted(skipped.items())
    report_path = os.path.join(output_dir, f"{split}.skipped.txt")
    write_text_atomic(report_path, (
        f"# {len(skipped_list)} of {len(items)} images in {input_dir} were skipped as "
        "undecodable; one '<path>\\t<reason>' per line\n"
        + "".join(f"{path}\t{reason}\n" for path, reason in skipped_list)))
    if skipped_list:
        logging.warning("%d undecodable images skipped; listed in %s", len(skipped_list),
                        report_path)
    written = len(items) - len(skipped_list)
    logging.info("wrote %d records in %d files to %s", written, len(paths), output_dir)
    return BuildResult(mode, paths, written, skipped_list, class_names, report_path, labels_path)


def define_flags() -> None:
    flag_groups.define_traceback_flag()
    flags.DEFINE_string("input_dir", None, "Image folder: <class>/*.jpg (labeled) or *.jpg.")
    flags.DEFINE_string("output_dir", None, "Where the TFRecords are written.")
    flags.DEFINE_string("split", None, "File name prefix; default 'train' (labeled) or "
                        "'unlabeled'.")
    flags.DEFINE_enum("mode", "auto", MODES, "Folder layout; auto: sub-folders mean labeled.")
    flags.DEFINE_integer("num_shards", 0, f"Output files; 0: one per {IMAGES_PER_SHARD} images.",
                         lower_bound=0)
    flags.DEFINE_integer("label_base", 1, "Label of the first class (1 as in ImageNet files; "
                         "readers then use label_offset=1).")
    flags.DEFINE_integer("seed", 0, "Seed of the shuffle of the image order.")
    flags.DEFINE_integer("num_threads", os.cpu_count() or 1, "Threads reading and checking.",
                         lower_bound=1)
    flags.mark_flags_as_required(["input_dir", "output_dir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    build(f.input_dir, f.output_dir, split=f.split, mode=f.mode, num_shards=f.num_shards,
          label_base=f.label_base, seed=f.seed, num_threads=f.num_threads)


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, PROGRAM)


if __name__ == "__main__":
    run()
