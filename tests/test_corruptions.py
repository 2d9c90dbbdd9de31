"""Corrupted record sets (noisy_student.cli.make_corrupted) and mCE against a user-given
baseline."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("imagecorruptions")

from noisy_student.evaluation import (
    corruptions,  # noqa: E402
    robustness,  # noqa: E402
)
from noisy_student.evaluation.metrics import IMAGENET_C_CORRUPTIONS  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(seed, size=32):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3)).astype(np.uint8)


def test_every_corruption_runs_and_changes_the_image():
    # glass_blur and fog need our compatibility patches (scikit-image >= 0.26, NumPy 2).
    image = _image(0)
    for name in IMAGENET_C_CORRUPTIONS:
        out = corruptions.corrupt_pixels(image, name, 3, seed=1)
        assert out.shape == image.shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - image).mean() > 1, name
    again = corruptions.corrupt_pixels(image, "gaussian_noise", 3, seed=1)
    assert np.array_equal(again, corruptions.corrupt_pixels(image, "gaussian_noise", 3, seed=1))
    assert not np.array_equal(again, corruptions.corrupt_pixels(image, "gaussian_noise", 3,
                                                                seed=2))
    with pytest.raises(ValueError, match="severity"):
        corruptions.corrupt_pixels(image, "fog", 6, seed=0)


def _nearest_center_error(path, centers, label_offset):
    """Reference: decode records with tf.train.Example + Pillow, classify by brightness."""
    import tensorflow as tf

    wrong = total = 0
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        f = tf.train.Example.FromString(raw).features.feature
        pixels = np.asarray(Image.open(io.BytesIO(f["image/encoded"].bytes_list.value[0])),
                            np.float32)
        pred = int(np.argmin(np.abs(pixels.mean() - np.asarray(centers))))
        wrong += pred != f["image/class/label"].int64_list.value[0] - label_offset
        total += 1
    return wrong / total


def test_make_corrupted_then_mce_against_baseline(tf, tmp_path):
    from test_robustness import BrightnessModel

    from noisy_student.data import records

    source = tmp_path / "validation-00000-of-00001"
    levels = [60, 70, 110, 150, 190, 200]  # labels 1 (dark) and 2 (bright), 1-based
    with tf.io.TFRecordWriter(str(source)) as writer:
        for level in levels:
            pixels = np.full((32, 32, 3), level, np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="PNG")
            writer.write(records.encode_labeled(buffer.getvalue(), 1 if level < 128 else 2))
    (tmp_path / "labels.txt").write_text("1 dark\n2 bright\n")
    out = tmp_path / "corrupted"
    names = ("brightness", "contrast")
    result = corruptions.make_corrupted(str(source), str(out), corruptions=names,
                                        images_per_shard=4)
    assert len(result["written"]) == 2 * 5 * 2 and (out / "labels.txt").exists()
    again = corruptions.make_corrupted(str(source), str(out), corruptions=names,
                                       images_per_shard=4)
    assert again["written"] == [] and len(again["skipped_existing"]) == 20

    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"errors": {"brightness": 0.5,
                                               "contrast": [0.2, 0.4, 0.6, 0.8, 1.0]},
                                    "clean_error": 0.1}))
    centers = [65.0, 195.0]
    got = robustness.evaluate_corrupted(
        BrightnessModel(centers=centers), str(out), baseline_path=str(baseline), image_size=32,
        num_classes=2, batch_size=4, small_images=True, label_offset=1, clean_error=0.0,
        output_dir=str(tmp_path / "eval"))
    for name in names:
        expected = []
        for s in range(1, 6):
            shards = sorted((out / name / str(s)).iterdir())
            errs = [_nearest_center_error(str(p), centers, 1) for p in shards]
            counts = [4, 2]
            expected.append(float(np.dot(errs, counts) / 6))
        assert got["errors"][name] == pytest.approx(expected), name
    assert got["CE"]["brightness"] == pytest.approx(sum(got["errors"]["brightness"]) / 2.5)
    assert got["CE"]["contrast"] == pytest.approx(sum(got["errors"]["contrast"]) / 3.0)
    # Brightness at high severity pushes dark images past the midpoint: the errors are not
    # trivially zero (contrast leaves uniform images unchanged, so its errors are 0).
    assert got["errors"]["brightness"][-1] > 0 and got["errors"]["contrast"] == [0.0] * 5
    assert got["relative_mCE"] == pytest.approx(np.mean(
        [sum(got["errors"]["brightness"]) / (2.5 - 0.5),
         sum(got["errors"]["contrast"]) / (3.0 - 0.5)]))
    assert (tmp_path / "eval" / "corrupted.json").exists()
    assert (tmp_path / "eval" / "corrupted_ce.png").exists()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        robustness.evaluate_corrupted(BrightnessModel(), str(tmp_path / "nowhere"),
                                      baseline_path=None, image_size=32, num_classes=2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"errors": {"brightness": 1.5}}))
    with pytest.raises(ValueError, match="bad.json"):
        robustness.read_baseline(str(bad))


def test_make_corrupted_help():
    run = subprocess.run([sys.executable, "-m", "tools.make_corrupted", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    # absl prints the help and exits with status 1.
    assert "--corruptions" in run.stdout and "--severities" in run.stdout, run.stderr
