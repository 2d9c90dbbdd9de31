"""Evaluation API and robustness benchmarks vs NumPy/Pillow references and hand-worked examples.

Data are a handful of tiny images written by the tests; the models are a tiny Keras model or
fake models whose prediction depends on the image brightness, so expected values are known.
"""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from noisy_student.data import labels_file
from noisy_student.evaluation import classification, metrics, robustness, sources

CENTERS = np.array([40.0, 120.0, 200.0])  # brightness of the 3 classes of the fake model


class BrightnessModel:
    """Scores -|mean brightness - center_k| for k in `centers`, optionally placed into columns
    `columns` of `width` scores (the others -1e9): the class is the nearest brightness level."""

    def __init__(self, centers=CENTERS, columns=None, width=None):
        import tensorflow as tf

        self.tf = tf
        self.centers = tf.constant(centers, tf.float32)
        self.columns, self.width = columns, width

    def __call__(self, images, training=False):
        tf = self.tf
        mean = tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2, 3])
        scores = -tf.abs(mean[:, None] - self.centers[None, :])
        if self.columns is None:
            return scores
        full = tf.fill([tf.shape(images)[0], self.width], -1e9)
        index = tf.constant([[c] for c in self.columns])
        return tf.transpose(tf.tensor_scatter_nd_update(tf.transpose(full), index,
                                                        tf.transpose(scores)))


def _png(level, size=8, noise=0):
    rng = np.random.default_rng(level)
    pixels = np.clip(level + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_folder(root, spec):
    """spec: {class folder: [brightness levels]} -> PNG files."""
    for name, levels in spec.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i, level in enumerate(levels):
            with open(os.path.join(root, name, f"img{i}.png"), "wb") as f:
                f.write(_png(level, noise=10))


# ----------------------------------------------------------------------------- class lists


def test_imagenet_wnid_file_matches_published_facts():
    wnids = sources.imagenet_wnids()
    assert len(wnids) == 1000 and len(set(wnids)) == 1000 and wnids == sorted(wnids)
    # tench, goldfish (ImageNet 0, 1); stingray and acorn are ImageNet-A's first and last classes.
    assert wnids[0] == "n01440764" and wnids[1] == "n01443537"
    assert wnids[metrics.IMAGENET_A_INDICES[0]] == "n01498041"
    assert wnids[metrics.IMAGENET_A_INDICES[-1]] == "n12267677"
    r = sources.IMAGENET_R_INDICES
    assert len(r) == 200 and list(r) == sorted(set(r))
    # ImageNet-R's class set (hendrycks/imagenet-r) contains goldfish and acorn, not tench.
    r_wnids = {wnids[i] for i in r}
    assert {"n01443537", "n12267677"} <= r_wnids and "n01440764" not in r_wnids
    a_map = sources.subset_label_map("imagenet_a")
    assert a_map["n01498041"] == 0 and a_map["n12267677"] == 199 and len(a_map) == 200


def test_read_class_names(tmp_path):
    numbered = tmp_path / "labels.txt"
    numbered.write_text("2 dog\n1 cat\n3 hot dog\n")
    assert labels_file.read_class_names(str(numbered)) == ["cat", "dog", "hot dog"]
    plain = tmp_path / "plain.txt"
    plain.write_text("n01\nn02\n\n")
    assert labels_file.read_class_names(str(plain)) == ["n01", "n02"]
    gap = tmp_path / "gap.txt"
    gap.write_text("1 a\n3 b\n")
    with pytest.raises(ValueError, match="gap.txt"):
        labels_file.read_class_names(str(gap))


@pytest.mark.parametrize("label_base", [0, 1])
def test_read_class_names_reads_what_the_tools_write(tmp_path, label_base):
    """One labels.txt format: labels_file.write_labels (build_tfrecords, build_demo_data) writes
    what labels_file.read_class_names (plots, evaluation, CAM) reads, names with spaces
    included."""
    names = ["airplane", "hot dog", "n01440764 tench"]
    path = labels_file.write_labels(str(tmp_path / str(label_base)), names, label_base)
    assert labels_file.read_class_names(path) == names


# ----------------------------------------------------------------------------- accuracy


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("folder"))
    # class "a" = dark (40), "b" = mid (120), "c" = bright (200); two images mislabeled.
    _write_folder(root, {"a": [40, 40, 120], "b": [120, 120, 120, 200], "c": [200, 200]})
    return root


def test_classification_on_image_folder_against_numpy(tf, keras, folder, tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)])
    dataset = sources.labeled_source(folder, image_size=8, batch_size=3, num_classes=3,
                                          small_images=True)
    out = str(tmp_path / "eval")
    result = classification.evaluate_classification(model, dataset, num_classes=3,
                                                class_names=["A", "B", "C"], output_dir=out)
    # Reference: Pillow decode, NumPy forward pass of the same weights, NumPy counting.
    kernel, bias = (w.numpy() for w in model.weights)
    images, labels = [], []
    for label, name in enumerate(["a", "b", "c"]):
        for f in sorted(os.listdir(os.path.join(folder, name))):
            images.append(np.asarray(Image.open(os.path.join(folder, name, f)), np.float32))
            labels.append(label)
    scores = np.stack([im.mean(axis=(0, 1)) for im in images]) @ kernel + bias
    preds = scores.argmax(axis=1)
    labels = np.array(labels)
    assert result["num_examples"] == 9
    assert result["top1"] == pytest.approx(np.mean(preds == labels))
    assert result["top5"] == 1.0  # 3 classes
    for k, name in enumerate("ABC"):
        assert result["per_class_accuracy"][name] == pytest.approx(
            np.mean(preds[labels == k] == k))
    expected = np.zeros((3, 3), int)
    for t, p in zip(labels, preds, strict=True):
        expected[t, p] += 1
    saved = json.loads(open(os.path.join(out, "clean.json")).read())
    assert saved["confusion_matrix"] == expected.tolist()
    assert saved["top1"] == pytest.approx(result["top1"])
    with open(os.path.join(out, "clean_confusion.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_folder_brightness_model_and_bad_input(tf, folder, tmp_path):
    dataset = sources.labeled_source(folder, image_size=8, batch_size=4, num_classes=3,
                                          small_images=True)
    result = classification.evaluate_classification(BrightnessModel(), dataset, num_classes=3)
    # By construction 7 of 9 images sit at their class's level.
    assert result["top1"] == pytest.approx(7 / 9)
    assert result["per_class_accuracy"] == {"0": pytest.approx(2 / 3), "1": pytest.approx(3 / 4),
                                            "2": 1.0}
    bad = tmp_path / "bad"
    _write_folder(str(bad), {"x": [40]})
    (bad / "x" / "broken.jpg").write_bytes(b"not an image")
    strict = sources.labeled_source(str(bad), image_size=8, batch_size=4, num_classes=1,
                                         small_images=True, strict=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.jpg"):
        list(strict)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sources.labeled_source(str(tmp_path / "nowhere*"), image_size=8, batch_size=1,
                                    num_classes=1)


def test_imagenet_a_folder_and_relabeled_records(tf, tmp_path):
    from noisy_student.data import records

    idx = metrics.IMAGENET_A_INDICES
    wnids = sources.imagenet_wnids()
    root = str(tmp_path / "imagenet-a")
    # Dark images are stingray (A label 0, ImageNet 6), bright ones acorn (A label 199, 988).
    _write_folder(root, {wnids[idx[0]]: [40, 40], wnids[idx[-1]]: [200, 40]})
    model = BrightnessModel(centers=[40.0, 200.0], columns=[idx[0], idx[-1]], width=1000)
    result = classification.evaluate_subset(model, "imagenet_a", root, image_size=8, batch_size=2,
                                        small_images=True, output_dir=str(tmp_path / "out"))
    assert result["num_examples"] == 4 and result["top1"] == pytest.approx(3 / 4)
    assert result["per_class_accuracy"]["n01498041"] == 1.0
    assert result["per_class_accuracy"]["n12267677"] == 0.5
    assert result["per_class_examples"][wnids[idx[1]]] == 0
    assert os.path.exists(tmp_path / "out" / "imagenet_a.json")
    # A folder that is no ImageNet-A class is named in the error.
    _write_folder(root, {"n01440764": [40]})
    with pytest.raises(ValueError, match="n01440764"):
        classification.evaluate_subset(model, "imagenet_a", root, image_size=8, small_images=True)
    # 1000-class labels (as TFDS imagenet_a gives them) map to subset positions.
    path = str(tmp_path / "a.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label in (idx[0], idx[5], idx[-1]):
            writer.write(records.encode_labeled(_png(40), label))
    dataset = sources.labeled_source(
        path, image_size=8, batch_size=3, num_classes=1000, small_images=True,
        label_map=sources.subset_label_table(idx))
    assert next(iter(dataset))[1].numpy().tolist() == [0, 5, 199]


# ----------------------------------------------------------------------------- ImageNet-C


def test_corruption_metrics_worked_example():
    errors = {"a": [0.1, 0.2, 0.3, 0.4, 0.5], "b": [0.5] * 5}
    baseline = {"a": 0.6, "b": [0.5, 0.6, 0.7, 0.8, 0.9]}
    result = robustness.corruption_metrics(errors, baseline, clean_error=0.05,
                                           baseline_clean_error=0.4)
    # By hand: CE_a = 1.5 / (5 * 0.6) = 0.5; CE_b = 2.5 / 3.5 = 0.714285...; mCE = 0.607142...
    assert result["CE"]["a"] == pytest.approx(0.5)
    assert result["CE"]["b"] == pytest.approx(0.7142857142857)
    assert result["mCE"] == pytest.approx(0.6071428571429)
    # Relative: (1.5 - 5 * 0.05) / (3.0 - 5 * 0.4) = 1.25; (2.5 - 0.25) / (3.5 - 2.0) = 1.5.
    assert result["relative_CE"] == {"a": pytest.approx(1.25), "b": pytest.approx(1.5)}
    assert result["relative_mCE"] == pytest.approx(1.375)
    table = robustness.corruption_table(result["errors"], result["CE"], result["mCE"])
    assert "60.71" in table and "71.43" in table
    with pytest.raises(ValueError, match="baseline has no error"):
        robustness.corruption_metrics(errors, {"a": 0.6})


def test_imagenet_c_alexnet_normalization_worked_example():
    # A model exactly as good as AlexNet on every corruption except fog, where it halves
    # AlexNet's error at every severity: CE_fog = 0.5, others 1; mCE = (14 + 0.5) / 15.
    errors = {c: [a] * 5 for c, a in metrics.ALEXNET_IMAGENET_C_ERRORS.items()}
    errors["fog"] = [0.819324 / 2] * 5
    result = robustness.corruption_metrics(errors, metrics.ALEXNET_IMAGENET_C_ERRORS)
    assert result["CE"]["fog"] == pytest.approx(0.5)
    assert result["mCE"] == pytest.approx(14.5 / 15)


def test_imagenet_c_folder_layout(tf, tmp_path):
    wnids = sources.imagenet_wnids()
    root = tmp_path / "imagenet-c"
    # Severity s: s - 1 of the 4 images of class 0 (dark) are bright, so misclassified.
    for c in ("fog", "snow"):
        for s in range(1, 6):
            levels = [200] * (s - 1) + [40] * (5 - s)
            _write_folder(str(root / c / str(s)), {wnids[0]: levels})
    model = BrightnessModel(centers=[40.0, 200.0], columns=[0, 1], width=1000)
    result = robustness.evaluate_imagenet_c(model, str(root), image_size=8, batch_size=4,
                                            small_images=True, corruptions=("fog", "snow"),
                                            output_dir=str(tmp_path / "out"))
    expected = [0.0, 0.25, 0.5, 0.75, 1.0]
    assert result["errors"]["fog"] == pytest.approx(expected)
    assert result["CE"]["snow"] == pytest.approx(sum(expected) / (5 * 0.866816))
    assert (tmp_path / "out" / "imagenet_c_ce.png").exists()
    assert json.loads((tmp_path / "out" / "imagenet_c.json").read_text())["mCE"] == (
        pytest.approx(result["mCE"]))


# ----------------------------------------------------------------------------- ImageNet-P


def test_top5_distance_hand_computed():
    a = np.array([[7, 6, 5, 4, 3, 2, 1.0]])  # ranking 0, 1, 2, 3, 4, 5, 6
    swap = np.array([[6, 7, 5, 4, 3, 2, 1.0]])  # classes 0 and 1 swap: |0-1| + |1-0| = 2
    newcomer = np.array([[7, 6, 5, 4, 3, 2, 8.0]])  # class 6 first: ranks 1..5 -> 1+1+1+1+1
    far = np.array([[1, 2, 3, 4, 5, 6, 7.0]])  # reversed: ranks 6,5,4,3,2 -> min(.,5) 5,5,4,3,2
    got = robustness.top5_distances(np.repeat(a, 4, 0), np.concatenate([a, swap, newcomer, far]))
    assert got.tolist() == [0, 2, 5, 5 + 4 + 2 + 0 + 2]


def _write_video(path, levels, size=32):
    import imageio.v2 as imageio

    os.makedirs(os.path.dirname(path), exist_ok=True)
    frames = [np.full((size, size, 3), level, np.uint8) for level in levels]
    imageio.mimwrite(path, frames, format="FFMPEG", fps=5, codec="libx264", quality=10,
                     macro_block_size=16)


def test_imagenet_p_flip_probability_and_top5_distance(tf, tmp_path):
    root = tmp_path / "imagenet-p"
    wnid = sources.imagenet_wnids()[0]
    levels = [40, 120, 40, 40, 200]
    for p in ("gaussian_noise", "rotate"):
        _write_video(str(root / p / wnid / "seq0.mp4"), levels)
        _write_video(str(root / p / wnid / "seq1.mp4"), [40] * 5)  # no flips at all
    frames = sources.read_video(str(root / "rotate" / wnid / "seq0.mp4"))
    assert frames.shape == (5, 32, 32, 3)
    assert np.abs(frames.mean(axis=(1, 2, 3)) - levels).max() < 8  # lossy, but close
    result = robustness.evaluate_imagenet_p(BrightnessModel(), str(root), image_size=32,
                                            perturbations=("gaussian_noise", "rotate"),
                                            output_dir=str(tmp_path / "out"))
    per = result["perturbations"]
    # Consecutive: 40>120 flip, 120>40 flip, 40>40 no, 40>200 flip = 3/4; the constant video 0.
    assert per["rotate"]["flip_probability"] == pytest.approx((3 / 4 + 0) / 2)
    # Noise compares with frame 0 (40): 120 flip, 40 no, 40 no, 200 flip = 2/4.
    assert per["gaussian_noise"]["flip_probability"] == pytest.approx((2 / 4 + 0) / 2)
    # Top-5 distance over 3 classes, by hand: (40,120) 2, (120,40) 2, (40,40) 0, (40,200) 4.
    assert per["rotate"]["top5_distance"] == pytest.approx(((2 + 2 + 0 + 4) / 4 + 0) / 2)
    assert per["gaussian_noise"]["top5_distance"] == pytest.approx(((2 + 0 + 0 + 4) / 4) / 2)
    assert result["mean_flip_probability"] == pytest.approx((3 / 8 + 2 / 8) / 2)
    assert "mFR" not in result
    normalized = robustness.evaluate_imagenet_p(
        BrightnessModel(), str(root), image_size=32, perturbations=("rotate",),
        baseline_flip_probabilities={"rotate": 0.75})
    assert normalized["mFR"] == pytest.approx((3 / 8) / 0.75)
    (root / "rotate" / wnid / "seq2.mp4").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="seq2.mp4"):
        robustness.evaluate_imagenet_p(BrightnessModel(), str(root), image_size=32,
                                       perturbations=("rotate",))
