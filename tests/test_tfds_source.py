"""TFDS specs feed the same pipelines (tfds.testing.mock_data: no downloads)."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from noisy_student.data import pipelines, tfds_source

NUM = 12


def _digest(image) -> str:
    return hashlib.sha256(np.asarray(image, np.float32).tobytes()).hexdigest()


@pytest.fixture
def mock_cifar():
    with tfds.testing.mock_data(num_examples=NUM):
        yield


@pytest.mark.parametrize("spec, expected", [
    ("tfds:cifar10", ("cifar10", None)),
    ("tfds:cifar10@train[:10%]", ("cifar10", "train[:10%]")),
    ("tfds:imagenet2012:5.1.0@validation", ("imagenet2012:5.1.0", "validation")),
])
def test_parse_spec(spec, expected):
    assert tfds_source.is_tfds_spec(spec)
    assert tfds_source.parse_tfds_spec(spec) == expected


def test_bad_specs():
    assert not tfds_source.is_tfds_spec("/data/train-*")
    with pytest.raises(ValueError, match="no data set name"):
        tfds_source.parse_tfds_spec("tfds:@train")


def test_labeled_tfds_matches_tfds_own_decoding(mock_cifar):
    """Our pipeline (encoded bytes -> our preprocessing) gives the images and labels that
    tfds itself decodes."""
    reference = {_digest(ex["image"]): int(ex["label"])
                 for ex in tfds.load("cifar10", split="train").as_numpy_iterator()}
    assert len(reference) == NUM
    images, labels = [], []
    for x, y in pipelines.labeled_dataset(
            "tfds:cifar10@train", image_size=32, batch_size=5, training=False,
            num_classes=10, small_images=True, one_hot=False):
        images += list(x.numpy())
        labels += list(y.numpy())
    assert {_digest(img): int(lab) for img, lab in zip(images, labels, strict=True)} == reference


def test_training_and_default_eval_split(mock_cifar):
    x, y = next(iter(pipelines.labeled_dataset(
        "tfds:cifar10", image_size=24, batch_size=16, training=True, num_classes=10,
        deterministic=True)))  # 16 > 12 examples: repeats
    assert x.shape == (16, 24, 24, 3) and y.shape == (16, 10)
    test_images = list(pipelines.unlabeled_dataset(
        "tfds:cifar10", image_size=32, batch_size=NUM, training=False, small_images=True))
    assert test_images[0].shape == (NUM, 32, 32, 3)
    reference = {_digest(ex["image"])
                 for ex in tfds.load("cifar10", split="test").as_numpy_iterator()}
    assert {_digest(img) for img in test_images[0].numpy()} == reference


def test_tfds_refuses_label_offset_and_pseudo_labels():
    with pytest.raises(ValueError, match="0-based"):
        pipelines.labeled_dataset("tfds:cifar10", image_size=32, batch_size=2, training=True,
                                  num_classes=10, label_offset=1)
    with pytest.raises(ValueError, match="TFRecord"):
        pipelines.pseudo_labeled_dataset("tfds:cifar10", image_size=32, batch_size=2,
                                         training=True, num_classes=10)


def test_tfds_element_source_names_the_split(mock_cifar):
    # (the mock ignores split slicing such as train[:50%], so only whole splits are used here)
    dataset = tfds_source.tfds_dataset("tfds:cifar10@train", training=False,
                                       with_labels=True, input_context=None, seed=None)
    elements = list(dataset.as_numpy_iterator())
    assert len(elements) == NUM
    assert elements[0]["file"] == b"tfds:cifar10@train"
    assert [e["index"] for e in elements] == list(range(NUM))
    assert tf.io.is_jpeg(elements[0]["image"]).numpy() or elements[0]["image"][:4] == b"\x89PNG"
