"""noisy_student.cli.build_tfrecords (image folders -> TFRecords) and the bundled demo data."""

import collections
import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import (
    NUM_CLASSES,
    REPO,
    SAMPLE_DIR,
    encode,
    manifest,
    npz_dir,
    pil_decode,
    sample_examples,
    sample_pixels,
)

from noisy_student.cli import build_tfrecords
from noisy_student.data import pipelines

CLASSES = ["cat", "airplane", "dog"]  # sorted: airplane=1, cat=2, dog=3


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """root/<class>/ with real CIFAR images as PNG and JPEG files, one corrupt .jpg, one
    non-image file; returns (root, {path: (bytes, class)})."""
    images, _ = sample_pixels(15)
    root = tmp_path_factory.mktemp("tree") / "train"
    files = {}
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(5):
            fmt, ext = (("PNG", ".png"), ("JPEG", ".JPEG"), ("JPEG", ".jpg"))[i % 3]
            data = encode(images[c * 5 + i], fmt)
            path = root / name / f"img{i}{ext}"
            path.write_bytes(data)
            files[str(path)] = (data, name)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "dog" / "notes.txt").write_text("not an image")
    return str(root), files


def _read(path):
    out = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        feats = tf.train.Example.FromString(raw).features.feature
        label = (int(feats["image/class/label"].int64_list.value[0])
                 if "image/class/label" in feats else None)
        out.append((feats["image/encoded"].bytes_list.value[0], label, set(feats)))
    return out


def test_labeled_tree(image_tree, tmp_path):
    root, files = image_tree
    out = str(tmp_path / "out")
    result = build_tfrecords.build(root, out, num_shards=2, progress=False, num_threads=2)
    assert result.mode == "labeled" and result.num_written == 15
    assert sorted(os.listdir(out)) == ["labels.txt", "train-00000-of-00002",
                                       "train-00001-of-00002", "train.skipped.txt"]
    with open(os.path.join(out, "labels.txt")) as f:
        assert f.read() == "1 airplane\n2 cat\n3 dog\n"
    by_bytes = {data: name for data, name in files.values()}
    rows = [r for p in result.paths for r in _read(p)]
    assert sorted(len(_read(p)) for p in result.paths) == [7, 8]  # 16 images, 1 skipped
    assert len(rows) == 15
    for data, label, keys in rows:  # original bytes, 1-based label of the sorted class
        assert keys == {"image/encoded", "image/class/label"}
        assert label == sorted(CLASSES).index(by_bytes[data]) + 1
    with open(result.report_path) as f:
        report = f.read()
    assert "1 of 16 images" in report and os.path.join(root, "dog", "broken.jpg") in report
    # The pipeline reads it back with label_offset=1.
    counts = collections.Counter()
    for _, y in pipelines.labeled_dataset(os.path.join(out, "train-*"), image_size=32,
                                          batch_size=8, training=False, num_classes=3,
                                          label_offset=1, small_images=True, one_hot=False):
        counts.update(y.numpy().tolist())
    assert counts == {0: 5, 1: 5, 2: 5}


def test_deterministic_and_seeded(image_tree, tmp_path):
    root, _ = image_tree

    def digest(out, seed):
        result = build_tfrecords.build(root, str(tmp_path / out), seed=seed, progress=False)
        return [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in result.paths]

    assert digest("a", 3) == digest("b", 3)
    assert digest("a", 3) != digest("c", 4)


def test_flat_folder_is_unlabeled(tmp_path):
    images, _ = sample_pixels(6)
    root = tmp_path / "flat"
    root.mkdir()
    for i, image in enumerate(images):
        (root / f"{i}.png").write_bytes(encode(image))
    result = build_tfrecords.build(str(root), str(tmp_path / "out"), progress=False)
    assert result.mode == "unlabeled" and result.labels_path is None
    assert [os.path.basename(p) for p in result.paths] == ["unlabeled-00000-of-00001"]
    rows = _read(result.paths[0])
    assert all(keys == {"image/encoded"} for _, _, keys in rows)
    decoded = sorted(pil_decode(data).tobytes() for data, _, _ in rows)
    assert decoded == sorted(image.tobytes() for image in images)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_tfrecords.build(str(tmp_path / "missing"), str(tmp_path / "o"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        build_tfrecords.build(str(tmp_path / "empty"), str(tmp_path / "o"), progress=False)
    mixed = tmp_path / "mixed"
    (mixed / "a").mkdir(parents=True)
    (mixed / "x.png").write_bytes(encode(sample_pixels(1)[0][0]))
    with pytest.raises(ValueError, match="--mode"):
        build_tfrecords.build(str(mixed), str(tmp_path / "o"), progress=False)


def test_refuses_to_mix_shard_sets_and_label_files(image_tree, tmp_path):
    root, _ = image_tree
    out = str(tmp_path / "out")
    build_tfrecords.build(root, out, num_shards=2, progress=False)
    with pytest.raises(FileExistsError, match="train-0000.-of-00002"):
        build_tfrecords.build(root, out, num_shards=3, progress=False)
    with open(os.path.join(out, "labels.txt"), "w") as f:
        f.write("1 something else\n")
    with pytest.raises(FileExistsError, match="labels.txt"):
        build_tfrecords.build(root, out, num_shards=2, progress=False)


def test_command_line(image_tree, tmp_path):
    root, _ = image_tree
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    ok = subprocess.run(
        [sys.executable, "-m", "tools.build_tfrecords", f"--input_dir={root}",
         f"--output_dir={out}", "--split=validation", "--num_shards=3", "--label_base=0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert sorted(os.listdir(out))[:3] == ["labels.txt", "validation-00000-of-00003",
                                           "validation-00001-of-00003"]
    assert (out / "labels.txt").read_text().startswith("0 airplane\n")


# ---- the bundled demo data (noisy_student.cli.build_demo_data output) ----

def test_sample_files_match_readme_hashes_and_size():
    with open(os.path.join(SAMPLE_DIR, "README.md")) as f:
        readme = f.read()
    listed = dict(re.findall(r"\| `([\w.\-]+)` \| [\d,]+ \| `([0-9a-f]{64})` \|", readme))
    present = sorted(n for n in os.listdir(SAMPLE_DIR) if n != "README.md")
    assert sorted(listed) == present
    for name, digest in listed.items():
        with open(os.path.join(SAMPLE_DIR, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name
    total = sum(os.path.getsize(os.path.join(SAMPLE_DIR, n)) for n in os.listdir(SAMPLE_DIR))
    assert total <= 20 * 2**20


def test_sample_records_are_the_npz_pixels_and_labels():
    source = npz_dir()
    if source is None:
        pytest.skip("CIFAR-10 .npz shards not on this machine (set CIFAR10_NPZ_DIR)")
    rows = manifest()
    assert collections.Counter(r["split"] for r in rows) == {
        "train": 1000, "unlabeled": 9000, "validation": 2000}
    train_idx = {r["npz_index"] for r in rows if r["split"] == "train"}
    unlabeled_idx = {r["npz_index"] for r in rows if r["split"] == "unlabeled"}
    assert not train_idx & unlabeled_idx  # unlabeled images are not labeled ones
    for split in ("train", "validation"):
        examples = sample_examples(split)
        split_rows = [r for r in rows if r["split"] == split]
        with np.load(os.path.join(source, split_rows[0]["npz"])) as z:
            images, labels = z["images"], z["labels"]
        for example, row in zip(examples[::37], split_rows[::37], strict=True):
            i = int(row["npz_index"])
            np.testing.assert_array_equal(pil_decode(example["image"]), images[i])
            assert example["label"] == labels[i] + 1
        counts = np.bincount([e["label"] - 1 for e in examples], minlength=NUM_CLASSES)
        assert counts.tolist() == [len(examples) // NUM_CLASSES] * NUM_CLASSES
