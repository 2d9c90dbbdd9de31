"""TFRecord codecs: feature names, round trips, compact storage, atomic writing."""

import os

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import sample_examples

from noisy_student.atomic_io import temp_path
from noisy_student.data import records


@pytest.fixture(scope="module")
def image_bytes():
    return sample_examples("validation", 1)[0]["image"]


def _features(serialized: bytes):
    return tf.train.Example.FromString(serialized).features.feature


def _softmax(logits):
    e = np.exp(logits - logits.max())
    return (e / e.sum()).astype(np.float32)


def test_labeled_feature_names_and_round_trip(image_bytes):
    serialized = records.encode_labeled(image_bytes, 7)
    feats = _features(serialized)
    assert set(feats) == {"image/encoded", "image/class/label"}
    assert feats["image/encoded"].bytes_list.value[0] == image_bytes
    assert list(feats["image/class/label"].int64_list.value) == [7]
    parsed = records.parse_labeled(tf.constant(serialized), label_offset=1)
    assert parsed["image"].numpy() == image_bytes
    assert int(parsed["label"]) == 6


def test_unlabeled_parser_ignores_other_features(image_bytes):
    probs = np.full(10, 0.1, np.float32)
    for serialized in (records.encode_unlabeled(image_bytes),
                       records.encode_labeled(image_bytes, 3),
                       records.encode_pseudo_labeled(image_bytes, probs, "topk:2")):
        parsed = records.parse_unlabeled(tf.constant(serialized))
        assert set(parsed) == {"image"}
        assert parsed["image"].numpy() == image_bytes
    assert set(_features(records.encode_unlabeled(image_bytes))) == {"image/encoded"}


def test_reference_float32_form_is_readable(image_bytes):
    """A record built by hand with the reference feature names (not by our encoder)."""
    probs = _softmax(np.random.default_rng(0).normal(size=10))
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "probabilities": tf.train.Feature(float_list=tf.train.FloatList(value=probs)),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(probs.argmax())])),
        "prob": tf.train.Feature(float_list=tf.train.FloatList(value=[probs.max()])),
    }))
    parsed = records.parse_pseudo_labeled(tf.constant(example.SerializeToString()), 10)
    np.testing.assert_array_equal(parsed["probabilities"].numpy(), probs)
    assert int(parsed["label"]) == probs.argmax()
    assert parsed["prob"].numpy() == pytest.approx(probs.max())
    assert parsed["image"].numpy() == image_bytes


def test_float32_and_float16_storage(image_bytes):
    probs = _softmax(np.random.default_rng(1).normal(size=100) * 3)
    f32 = records.encode_pseudo_labeled(image_bytes, probs, "float32")
    assert set(_features(f32)) == {"image/encoded", "probabilities", "label", "prob"}
    np.testing.assert_array_equal(
        records.parse_pseudo_labeled(tf.constant(f32), 100)["probabilities"].numpy(), probs)
    f16 = records.encode_pseudo_labeled(image_bytes, probs, "float16")
    feats = _features(f16)
    assert "probabilities" not in feats
    stored = np.frombuffer(feats["probabilities/float16"].bytes_list.value[0], "<f2")
    np.testing.assert_array_equal(stored, probs.astype(np.float16))
    parsed = records.parse_pseudo_labeled(tf.constant(f16), 100)
    assert parsed["probabilities"].dtype == tf.float32
    np.testing.assert_array_equal(parsed["probabilities"].numpy(),
                                  probs.astype(np.float16).astype(np.float32))
    assert int(parsed["label"]) == probs.argmax()
    assert parsed["prob"].numpy() == pytest.approx(probs.max())  # top-1 kept in float32


@pytest.mark.parametrize("storage", ["float32", "float16", "topk:3"])
def test_a_batch_encodes_each_record_as_its_own(storage):
    """Records of one batch share one Example whose values are replaced: each must parse to
    what its image and distribution give alone (images of other lengths, a tied row)."""
    rng = np.random.default_rng(3)
    probs = np.stack([_softmax(rng.normal(size=6) * 2) for _ in range(4)])
    probs[2] = [0.25, 0.25, 0.25, 0.25, 0.0, 0.0]  # ties: the lower class index ranks first
    images = [b"a" * 30, b"bb", b"", b"c" * 7]
    batch = records.encode_pseudo_labeled_batch(images, probs, storage)
    assert len(batch) == 4
    for image, row, serialized in zip(images, probs, batch, strict=True):
        parsed = records.parse_pseudo_labeled(tf.constant(serialized), 6)
        assert parsed["image"].numpy() == image
        assert int(parsed["label"]) == row.argmax() and parsed["prob"].numpy() == row.max()
        feats = _features(serialized)
        if storage == "topk:3":
            assert list(feats["probabilities/topk_indices"].int64_list.value) == (
                np.argsort(-row, kind="stable")[:3].tolist())
        else:
            stored = parsed["probabilities"].numpy()
            dtype = np.float16 if storage == "float16" else np.float32
            np.testing.assert_array_equal(stored, row.astype(dtype).astype(np.float32))
    with pytest.raises(ValueError, match="2 images for 4"):
        records.encode_pseudo_labeled_batch(images[:2], probs, storage)


def test_topk_storage_keeps_top_values_and_spreads_the_rest(image_bytes):
    probs = _softmax(np.random.default_rng(2).normal(size=50) * 2)
    k = 5
    serialized = records.encode_pseudo_labeled(image_bytes, probs, f"topk:{k}")
    feats = _features(serialized)
    top = np.argsort(probs)[::-1][:k]
    assert list(feats["probabilities/topk_indices"].int64_list.value) == top.tolist()
    dense = records.parse_pseudo_labeled(tf.constant(serialized), 50)["probabilities"].numpy()
    assert dense.shape == (50,) and dense.dtype == np.float32
    np.testing.assert_allclose(dense[top], probs[top], rtol=1e-6)
    rest = np.setdiff1d(np.arange(50), top)
    np.testing.assert_allclose(dense[rest], (1 - probs[top].sum()) / 45, rtol=1e-5)
    assert dense.sum() == pytest.approx(1.0, abs=1e-5)
    assert dense.argmax() == probs.argmax()


def test_storage_sizes_shrink_as_documented(image_bytes):
    """float32 costs 4 bytes per class, float16 2: the difference is about 2 * C bytes."""
    probs = _softmax(np.random.default_rng(3).normal(size=1000))
    size = {s: len(records.encode_pseudo_labeled(b"", probs, s))
            for s in ("float32", "float16", "topk:5")}
    assert abs((size["float32"] - size["float16"]) - 2000) <= 8
    assert size["topk:5"] < 200 < 2000 < size["float16"]  # 5 x (index + float) + names


@pytest.mark.parametrize("storage", ["bfloat16", "topk:0", "topk:11", "topk", "topk:2x"])
def test_bad_storage_names_are_rejected(storage, image_bytes):
    with pytest.raises(ValueError, match="storage|topk"):
        records.encode_pseudo_labeled(image_bytes, np.full(10, 0.1), storage)


def test_bad_probabilities_are_rejected(image_bytes):
    with pytest.raises(ValueError, match="finite"):
        records.encode_pseudo_labeled(image_bytes, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="1-D"):
        records.encode_pseudo_labeled(image_bytes, np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        records.encode_labeled(image_bytes, -1)


def test_wrong_length_and_missing_probabilities_fail_to_parse(image_bytes):
    serialized = records.encode_pseudo_labeled(image_bytes, np.full(10, 0.1), "float16")
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_classes=12"):
        records.parse_pseudo_labeled(tf.constant(serialized), 12)
    bare = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        "prob": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
    })).SerializeToString()
    with pytest.raises(tf.errors.InvalidArgumentError, match="exactly one"):
        records.parse_pseudo_labeled(tf.constant(bare), 10)


def test_mixed_storage_forms_parse_in_a_dataset_map(tmp_path, image_bytes):
    rng = np.random.default_rng(4)
    probs = [_softmax(rng.normal(size=10)) for _ in range(3)]
    path = str(tmp_path / "pseudo")
    with records.atomic_tfrecord_writer(path) as writer:
        for p, storage in zip(probs, ("float32", "float16", "topk:10"), strict=True):
            writer.write(records.encode_pseudo_labeled(image_bytes, p, storage))
    parsed = list(tf.data.TFRecordDataset(path)
                  .map(lambda r: records.parse_pseudo_labeled(r, 10)).as_numpy_iterator())
    for got, want in zip(parsed, probs, strict=True):
        np.testing.assert_allclose(got["probabilities"], want, atol=1e-3)


def test_atomic_writer_renames_on_success_and_cleans_up_on_error(tmp_path, image_bytes):
    path = str(tmp_path / "train-00000-of-00001")
    with records.atomic_tfrecord_writer(path) as writer:
        writer.write(records.encode_unlabeled(image_bytes))
        assert not os.path.exists(path)
        assert os.listdir(tmp_path) == [os.path.basename(temp_path(path))]
        assert os.listdir(tmp_path)[0].endswith(f"-{os.getpid()}")
    assert os.listdir(tmp_path) == ["train-00000-of-00001"]
    assert len(list(tf.data.TFRecordDataset(path))) == 1

    with pytest.raises(RuntimeError, match="boom"):
        with records.atomic_tfrecord_writer(path) as writer:
            writer.write(b"partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["train-00000-of-00001"]  # temp removed, old file intact
    assert len(list(tf.data.TFRecordDataset(path))) == 1


def test_atomic_writer_compression(tmp_path, image_bytes):
    path = str(tmp_path / "x.gz")
    with records.atomic_tfrecord_writer(path, compression="GZIP") as writer:
        writer.write(records.encode_unlabeled(image_bytes))
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip magic
    assert len(list(tf.data.TFRecordDataset(path, compression_type="GZIP"))) == 1


def test_atomic_output_replaces_a_folder_only_when_complete(tmp_path):
    """atomic_output (every writer's temp-then-rename): a folder output replaces an existing
    folder whole; a failed write leaves the old one and no temp behind."""
    from noisy_student.atomic_io import atomic_output, is_temp_name

    target = tmp_path / "export"
    for version in ("old", "new"):
        with atomic_output(str(target)) as staging:
            assert is_temp_name(os.path.basename(staging)) and not os.path.exists(staging)
            os.makedirs(os.path.join(staging, "variables"))
            with open(os.path.join(staging, "variables", "v"), "w") as f:
                f.write(version)
    assert (target / "variables" / "v").read_text() == "new"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(str(target)) as staging:
            os.makedirs(staging)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["export"]
    assert (target / "variables" / "v").read_text() == "new"


def test_reference_record_names_its_image_and_keeps_top_k_under_200_bytes():
    from noisy_student.data import reference_records as ref

    probs = _softmax(np.random.default_rng(5).normal(size=1000) * 3)
    serialized = ref.encode_reference("train-00123-of-01024", 123456, probs)
    filtered = ref.with_copies(serialized, 3)
    assert len(filtered) <= 200  # the target at 1,000 classes, copies included
    assert ref.is_reference(filtered)
    assert not ref.is_reference(records.encode_pseudo_labeled(b"x", probs, "topk:5"))
    parsed = ref.parse_reference(tf.constant(filtered), 1000)
    assert parsed["source"].numpy() == b"train-00123-of-01024"
    assert int(parsed["index"]) == 123456 and int(parsed["copies"]) == 3
    assert int(ref.parse_reference(tf.constant(serialized), 1000)["copies"]) == 1
    # label and prob exactly as in a copy record; the top-5 in float16, the rest spread evenly.
    copy = records.parse_pseudo_labeled(
        tf.constant(records.encode_pseudo_labeled(b"x", probs, "float32")), 1000)
    assert int(parsed["label"]) == int(copy["label"]) == probs.argmax()
    assert parsed["prob"].numpy() == copy["prob"].numpy()
    dense = parsed["probabilities"].numpy()
    top = np.argsort(probs)[::-1][:5]
    np.testing.assert_allclose(dense[top], probs[top], rtol=1e-3)
    rest = np.setdiff1d(np.arange(1000), top)
    np.testing.assert_allclose(dense[rest], (1 - probs[top].sum()) / 995, rtol=1e-5)
    assert dense.argmax() == probs.argmax()
    with pytest.raises(ValueError, match="basename"):
        ref.encode_reference("dir/train-0", 1, probs)
    with pytest.raises(ValueError, match="top-k"):
        ref.encode_reference("train-0", 1, probs[:3], k=5)
