"""Bad data: undecodable images and truncated TFRecord files, counted or raised."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import NUM_CLASSES, encode, sample_pixels

from noisy_student.data import pipelines, records
from noisy_student.data.bad_data import MIN_BAD_FOR_ABORT, DataStats

GARBAGE_AT = 3
CUT_PNG_AT = 6
TRUNCATED_KEEPS = 7  # records left whole in the truncated file


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    """Two files of 10 real CIFAR images each: file A has garbage bytes in record 3 and a
    PNG cut in half in record 6; file B (JPEG) is cut in the middle of record 7."""
    images, labels = sample_pixels(20)
    folder = tmp_path_factory.mktemp("bad")
    path_a, path_b = str(folder / "train-00000-of-00002"), str(folder / "train-00001-of-00002")
    with records.atomic_tfrecord_writer(path_a) as writer:
        for i in range(10):
            data = encode(images[i])
            if i == GARBAGE_AT:
                data = os.urandom(len(data))
            elif i == CUT_PNG_AT:
                data = data[:len(data) // 2]
            writer.write(records.encode_labeled(data, int(labels[i]) + 1))
    sizes = []
    with records.atomic_tfrecord_writer(path_b) as writer:
        for i in range(10, 20):
            record = records.encode_labeled(encode(images[i], "JPEG", quality=95),
                                            int(labels[i]) + 1)
            sizes.append(len(record) + 16)
            writer.write(record)
    cut = sum(sizes[:TRUNCATED_KEEPS]) + sizes[TRUNCATED_KEEPS] // 2
    with open(path_b, "rb") as f:
        data = f.read()
    with open(path_b, "wb") as f:
        f.write(data[:cut])
    good = [i for i in range(10) if i not in (GARBAGE_AT, CUT_PNG_AT)] + list(
        range(10, 10 + TRUNCATED_KEEPS))
    return str(folder / "train-*"), path_a, path_b, labels[good]


def _dataset(pattern, **kwargs):
    defaults = dict(image_size=32, batch_size=4, training=False, num_classes=NUM_CLASSES,
                    label_offset=1, small_images=True, one_hot=False)
    return pipelines.labeled_dataset(pattern, **{**defaults, **kwargs})


def test_bad_records_are_skipped_counted_and_logged(corrupted, caplog):
    pattern, path_a, path_b, good_labels = corrupted
    stats = DataStats()
    with caplog.at_level(logging.WARNING):
        labels = np.concatenate([y.numpy() for _, y in _dataset(pattern, stats=stats)])
    assert sorted(labels) == sorted(good_labels)  # 8 + 7 images survive
    assert stats.result() == {"images": 17, "bad_images": 2, "files": 2, "damaged_files": 1}
    text = caplog.text
    assert f"Undecodable image: record {GARBAGE_AT} of {path_a} was skipped" in text
    assert f"Undecodable image: record {CUT_PNG_AT} of {path_a} was skipped" in text
    assert f"Damaged TFRecord file {path_b}:" in text


def test_training_pipeline_skips_in_graph_and_in_tf_function(corrupted):
    """Train path (Inception crop; JPEG decode_and_crop) inside a tf.function."""
    pattern, _, _, good_labels = corrupted
    stats = DataStats()
    dataset = _dataset(pattern, training=True, repeat=False, drop_remainder=False,
                       small_images=False, image_size=24, stats=stats)

    @tf.function
    def count(ds):
        return ds.reduce(tf.constant(0), lambda n, batch: n + tf.shape(batch[0])[0])

    assert int(count(dataset)) == len(good_labels)
    assert stats.result()["bad_images"] == 2 and stats.result()["damaged_files"] == 1


def test_strict_undecodable_image_names_file_and_record(corrupted):
    _, path_a, _, _ = corrupted
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        for _ in _dataset(path_a, strict=True, deterministic=True):
            pass
    assert f"record {GARBAGE_AT} of {path_a} (strict=True" in str(error.value)
    assert "strict=False" in str(error.value)


def test_strict_truncated_file_names_file(corrupted):
    _, _, path_b, _ = corrupted
    with pytest.raises(tf.errors.InvalidArgumentError, match="Damaged TFRecord file") as error:
        for _ in _dataset(path_b, strict=True):
            pass
    assert os.path.basename(path_b) in str(error.value)


def test_stats_reset_and_shared_between_pipelines(corrupted):
    pattern, path_a, _, _ = corrupted
    stats = DataStats()
    for _ in _dataset(path_a, stats=stats):
        pass
    for _ in pipelines.unlabeled_dataset(path_a, image_size=32, batch_size=4, training=False,
                                         small_images=True, stats=stats):
        pass
    assert stats.result() == {"images": 20, "bad_images": 4, "files": 2, "damaged_files": 0}
    stats.reset()
    assert set(stats.result().values()) == {0}


def test_mostly_undecodable_input_aborts_instead_of_spinning(tmp_path):
    path = str(tmp_path / "junk-00000-of-00001")
    with records.atomic_tfrecord_writer(path) as writer:
        for _ in range(MIN_BAD_FOR_ABORT + 5):
            writer.write(records.encode_unlabeled(os.urandom(64)))
    dataset = pipelines.unlabeled_dataset(path, image_size=32, batch_size=8, training=True,
                                          small_images=True)  # repeats forever
    with pytest.raises(tf.errors.InvalidArgumentError, match="failed to decode"):
        next(iter(dataset))
