"""Input pipelines on the bundled CIFAR-10 sample (real images), checked against the .npz
source and against Pillow decoding."""

import collections
import glob
import hashlib
import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import (
    NUM_CLASSES,
    SAMPLE_DIR,
    encode,
    manifest,
    npz_dir,
    pil_decode,
    sample_examples,
    sample_pixels,
)

from noisy_student.data import pipelines, records
from noisy_student.data.bad_data import DataStats

TRAIN = os.path.join(SAMPLE_DIR, "train-*")
VALIDATION = os.path.join(SAMPLE_DIR, "validation-*")
UNLABELED = os.path.join(SAMPLE_DIR, "unlabeled-*")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """4 labeled files x 15 real images (PNG bytes of the bundled sample), 1-based labels."""
    examples = sample_examples("validation", 60)
    folder = tmp_path_factory.mktemp("small")
    for shard in range(4):
        path = str(folder / f"train-{shard:05d}-of-00004")
        with records.atomic_tfrecord_writer(path) as writer:
            for e in examples[shard * 15:(shard + 1) * 15]:
                writer.write(records.encode_labeled(e["image"], e["label"]))
    return str(folder / "train-*"), examples


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(image, np.float32).tobytes()).hexdigest()


def _collect(dataset):
    images, labels = [], []
    for x, y in dataset:
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_bundled_validation_matches_npz_source():
    """Every record of the sample, read through labeled_dataset, is an .npz image with its
    .npz label; 100 per class."""
    source = npz_dir()
    if source is None:
        pytest.skip("CIFAR-10 .npz shards not on this machine (set CIFAR10_NPZ_DIR)")
    with np.load(os.path.join(source, "cifar10_test.npz")) as z:
        npz_images, npz_labels = z["images"], z["labels"]
    rows = [r for r in manifest() if r["split"] == "validation"]
    indices = np.array([int(r["npz_index"]) for r in rows])
    stats = DataStats()
    images, labels = _collect(pipelines.labeled_dataset(
        VALIDATION, image_size=32, batch_size=100, training=False, num_classes=NUM_CLASSES,
        label_offset=1, small_images=True, one_hot=False, stats=stats))
    assert images.shape == (2000, 32, 32, 3) and labels.shape == (2000,)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10),
                                  np.bincount(npz_labels[indices], minlength=10))
    assert set(np.bincount(labels)) == {200}
    expected = {_digest(npz_images[i]): int(npz_labels[i]) for i in indices}
    got = {_digest(img): int(lab) for img, lab in zip(images, labels, strict=True)}
    assert got == expected  # same pixels (PNG is lossless) with the same labels
    assert stats.result() == {"images": 2000, "bad_images": 0, "files": 2, "damaged_files": 0}


def test_bundled_train_labels_match_records_read_directly():
    images, labels = _collect(pipelines.labeled_dataset(
        TRAIN, image_size=32, batch_size=250, training=False, num_classes=NUM_CLASSES,
        label_offset=1, small_images=True))
    assert labels.shape == (1000, 10) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels.sum(axis=1), 1.0)
    examples = sample_examples("train")
    direct = {_digest(pil_decode(e["image"])): e["label"] - 1 for e in examples}
    got = {_digest(img): int(lab.argmax()) for img, lab in zip(images, labels, strict=True)}
    assert got == direct
    assert (collections.Counter(int(v) + 1 for v in labels.argmax(axis=1))
            == collections.Counter(e["label"] for e in examples))


def test_training_batches_repeat_and_drop_remainder():
    dataset = pipelines.labeled_dataset(
        TRAIN, image_size=40, batch_size=96, training=True, num_classes=NUM_CLASSES,
        label_offset=1, dtype=tf.bfloat16, shuffle_buffer=64)
    batches = list(dataset.take(12))  # 1152 images > 1000: it must repeat
    for x, y in batches:
        assert x.shape == (96, 40, 40, 3) and x.dtype == tf.bfloat16
        assert y.shape == (96, 10)
        values = tf.cast(x, tf.float32)
        assert float(tf.reduce_min(values)) >= 0 and float(tf.reduce_max(values)) <= 255
    assert dataset.element_spec[0].shape == (96, 40, 40, 3)  # static: drop_remainder


def test_a_seeded_training_pipeline_does_not_warn_about_the_global_seed(small_set):
    """--seed sets the global seed, which the augmentation's seed draw uses on purpose;
    TensorFlow would warn about it at every traced map (it does without the module's filter)."""
    pattern, _ = small_set
    tf.random.set_seed(3)
    try:
        with warnings.catch_warnings(record=True) as caught:
            pipelines.labeled_dataset(pattern, image_size=32, batch_size=4, training=True,
                                      num_classes=NUM_CLASSES, label_offset=1, small_images=True)
    finally:
        tf.random.set_seed(None)
    assert [str(w.message) for w in caught if "outer graph" in str(w.message)] == []


def test_eval_keeps_the_last_partial_batch():
    dataset = pipelines.labeled_dataset(
        VALIDATION, image_size=32, batch_size=300, training=False, num_classes=NUM_CLASSES,
        label_offset=1, small_images=True)
    assert [int(x.shape[0]) for x, _ in dataset] == [300] * 6 + [200]  # 2,000 images


def test_deterministic_mode_repeats_exactly(small_set):
    def first_batches(seed):
        dataset = pipelines.labeled_dataset(
            small_set[0], image_size=32, batch_size=16, training=True, num_classes=NUM_CLASSES,
            label_offset=1, small_images=True, deterministic=True, seed=seed, shuffle_buffer=50)
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(5)]  # 80 > 60: repeats

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_input_options_object_and_keywords_build_the_same_pipeline(small_set):
    """One InputOptions for every builder; keywords replace its fields, unknown ones fail."""
    options = pipelines.InputOptions(image_size=32, batch_size=16, training=True,
                                     small_images=True, deterministic=True, seed=3,
                                     shuffle_buffer=50)
    by_keywords = pipelines.labeled_dataset(
        small_set[0], image_size=32, batch_size=16, training=True, num_classes=NUM_CLASSES,
        label_offset=1, small_images=True, deterministic=True, seed=3, shuffle_buffer=50)
    by_object = pipelines.labeled_dataset(small_set[0], options, num_classes=NUM_CLASSES,
                                          label_offset=1)
    mixed = pipelines.labeled_dataset(small_set[0], options, num_classes=NUM_CLASSES,
                                      label_offset=1, batch_size=8)
    for (xa, ya), (xb, yb) in zip(by_keywords.take(3), by_object.take(3), strict=True):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    assert next(iter(mixed))[0].shape[0] == 8
    with pytest.raises(TypeError, match="image_sise"):
        pipelines.unlabeled_dataset(UNLABELED, options, image_sise=32)


def test_input_context_shards_files_and_splits_the_batch(small_set):
    pattern, examples = small_set

    def read(pipeline_id, count):
        context = tf.distribute.InputContext(num_input_pipelines=count,
                                             input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2 * count)
        dataset = pipelines.labeled_dataset(
            pattern, image_size=32, batch_size=12 * count, training=False,
            num_classes=NUM_CLASSES, label_offset=1, small_images=True, input_context=context)
        sizes, digests = [], []
        for x, _ in dataset:
            sizes.append(int(x.shape[0]))
            digests += [_digest(img) for img in x.numpy()]
        return sizes, digests

    parts = [read(i, 3) for i in range(3)]  # 4 files over 3 pipelines: 2, 1, 1 files
    assert all(max(sizes) == 6 for sizes, _ in parts)  # per-replica batch: 36 / 6 replicas
    digests = [d for _, ds in parts for d in ds]
    assert len(digests) == len(set(digests)) == 60
    assert set(digests) == {_digest(pil_decode(e["image"])) for e in examples}
    assert [len(ds) for _, ds in parts] == [30, 15, 15]


def test_fewer_files_than_pipelines_shards_records(small_set):
    two_files = sorted(glob.glob(small_set[0]))[:2]
    parts = []
    for i in range(3):  # 2 files, 3 pipelines: every pipeline keeps every 3rd record
        context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=i)
        images, _ = _collect(pipelines.labeled_dataset(
            two_files, image_size=32, batch_size=100, training=False,
            num_classes=NUM_CLASSES, label_offset=1, small_images=True, input_context=context,
            deterministic=True))
        parts.append([_digest(img) for img in images])
    assert [len(p) for p in parts] == [10] * 3
    assert len({d for p in parts for d in p}) == 30


def test_cache_gives_the_same_eval_data(small_set):
    kwargs = dict(image_size=32, batch_size=25, training=False, num_classes=NUM_CLASSES,
                  label_offset=1, small_images=True, deterministic=True)
    a = _collect(pipelines.labeled_dataset(small_set[0], **kwargs))
    cached = pipelines.labeled_dataset(small_set[0], cache=True, **kwargs)
    b, c = _collect(cached), _collect(cached)  # second pass reads the cache
    for x, y in (b, c):
        np.testing.assert_array_equal(x, a[0])
        np.testing.assert_array_equal(y, a[1])


def test_unlabeled_dataset_reads_jpeg_records_and_labeled_files():
    one_file = os.path.join(SAMPLE_DIR, "unlabeled-00000-of-00008")
    images = np.concatenate([x.numpy() for x in pipelines.unlabeled_dataset(
        one_file, image_size=32, batch_size=128, training=False, small_images=True)])
    assert images.shape == (1125, 32, 32, 3)
    # JPEG: the reference pixels come from TF's own decoder (Pillow's differs by a few levels).
    expected = {_digest(tf.io.decode_jpeg(e["image"], channels=3).numpy())
                for e in sample_examples("unlabeled", 1125)}
    assert {_digest(img) for img in images} == expected
    # labeled files are valid unlabeled input; include_encoded returns the stored bytes
    x, encoded = next(iter(pipelines.unlabeled_dataset(
        VALIDATION, image_size=32, batch_size=8, training=False, small_images=True,
        include_encoded=True, deterministic=True)))
    for image, data in zip(x.numpy(), encoded.numpy(), strict=True):
        np.testing.assert_array_equal(image, pil_decode(data))


@pytest.fixture(scope="module")
def pseudo_file(tmp_path_factory):
    """Real images with known teacher distributions, in all three storage forms."""
    images, _ = sample_pixels(12)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, NUM_CLASSES)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    path = str(tmp_path_factory.mktemp("pseudo") / "train-00000-of-00001")
    with records.atomic_tfrecord_writer(path) as writer:
        for i, image in enumerate(images):
            storage = ("float32", "float16", "topk:10")[i % 3]
            writer.write(records.encode_pseudo_labeled(encode(image), probs[i], storage))
    return path, images, probs


def _pseudo_targets(path, **kwargs):
    x, y = next(iter(pipelines.pseudo_labeled_dataset(
        path, image_size=32, batch_size=12, training=False, num_classes=NUM_CLASSES,
        small_images=True, deterministic=True, **kwargs)))
    return x.numpy(), y.numpy()


def test_pseudo_labeled_soft_targets_and_temperature(pseudo_file):
    path, images, probs = pseudo_file
    x, y = _pseudo_targets(path)
    np.testing.assert_array_equal(x, images.astype(np.float32))  # one file: record order
    np.testing.assert_allclose(y, probs, atol=1e-3)  # float16 rounding at worst
    _, sharp = _pseudo_targets(path, temperature=0.5)
    squared = probs ** 2 / (probs ** 2).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sharp, squared, atol=2e-3)


def test_pseudo_labeled_hard_targets(pseudo_file):
    path, _, probs = pseudo_file
    _, y = _pseudo_targets(path, hard=True)
    np.testing.assert_array_equal(y, np.eye(NUM_CLASSES)[probs.argmax(axis=1)])


def test_pattern_matching_nothing_names_it(tmp_path):
    pattern = str(tmp_path / "train-*")
    with pytest.raises(FileNotFoundError, match="train-\\*"):
        pipelines.labeled_dataset(pattern, image_size=32, batch_size=4, training=True,
                                  num_classes=NUM_CLASSES)


def test_wrong_kind_of_file_is_named():
    path = os.path.join(SAMPLE_DIR, "unlabeled-00000-of-00008")
    with pytest.raises(ValueError, match="unlabeled-00000-of-00008.*not a labeled"):
        pipelines.labeled_dataset(path, image_size=32, batch_size=4, training=False,
                                  num_classes=NUM_CLASSES)


def test_label_out_of_range_names_file_and_fix():
    dataset = pipelines.labeled_dataset(  # 1-based labels read without label_offset
        VALIDATION, image_size=32, batch_size=1000, training=False, num_classes=NUM_CLASSES,
        small_images=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="validation-0000.*label_offset=1"):
        for _ in dataset:
            pass


def test_temperature_must_be_positive(pseudo_file):
    with pytest.raises(ValueError, match="temperature"):
        pipelines.pseudo_labeled_dataset(pseudo_file[0], image_size=32, batch_size=2,
                                         training=False, num_classes=10, temperature=0)


def test_small_image_randaugment_runs_on_batches(small_set):
    """Small images with RandAugment take the batched path: same shapes, labels and order as
    without it, seeded by ``seed``, and every image carries the extra gray cutout."""
    def first_batches(num_layers):
        dataset = pipelines.labeled_dataset(
            small_set[0], image_size=32, batch_size=16, training=True, num_classes=NUM_CLASSES,
            label_offset=1, small_images=True, deterministic=True, seed=1, shuffle_buffer=50,
            randaug_num_layers=num_layers, randaug_magnitude=5.0)
        assert dataset.element_spec[0].shape == (16, 32, 32, 3)
        return [(x.numpy(), y.numpy()) for x, y in dataset.take(2)]

    plain, augmented, again = first_batches(0), first_batches(2), first_batches(2)
    for (xp, yp), (xa, ya), (xg, _) in zip(plain, augmented, again, strict=True):
        assert xa.shape == (16, 32, 32, 3) and xa.dtype == np.float32
        assert xa.min() >= 0 and xa.max() <= 255
        np.testing.assert_array_equal(ya, yp)  # same examples in the same order
        np.testing.assert_array_equal(xa, xg)  # deterministic
        assert not np.array_equal(xa, xp)
        assert ((xa == 128).all(axis=3).sum(axis=(1, 2)) >= 16).all()
    assert np.mean([((x == 128).all(axis=3).sum(axis=(1, 2)) >= 16).mean()
                    for x, _ in plain]) < 0.2
    # A bare image batch (unlabeled) and a non-deterministic run (seed None) work the same way.
    images = pipelines._augment_batch(tf.constant(plain[0][0].astype(np.uint8)),
                                      tf.constant(0, tf.int64), 32, 1, 5.0, tf.bfloat16, None)
    assert images.shape == (16, 32, 32, 3) and images.dtype == tf.bfloat16


def test_the_old_spelling_small_image_is_an_error_naming_it():
    with pytest.raises(TypeError, match="'small_image'"):
        pipelines.input_options(image_size=32, batch_size=8, training=False, small_image=True)


# ------------------------------------------------------------------ reference pseudo labels


@pytest.fixture(scope="module")
def reference_set(tmp_path_factory):
    """3 unlabeled files x 10 real images; reference shards naming some of them (with copies)
    and the equivalent copy records (top-5 storage) in the order the student should read."""
    from noisy_student.data import reference_records as ref

    images, _ = sample_pixels(30)
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(30, NUM_CLASSES)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    root = tmp_path_factory.mktemp("reference")
    (root / "src").mkdir()
    (root / "refs").mkdir()
    copies = rng.integers(0, 3, 30)  # 0: not kept
    expected = []
    for shard in range(3):
        name = f"unlabeled-{shard:05d}-of-00003"
        with records.atomic_tfrecord_writer(str(root / "src" / name)) as src, \
                records.atomic_tfrecord_writer(str(root / "refs" / f"train-{shard:05d}")) as out:
            for index in range(10):
                i = shard * 10 + index
                src.write(records.encode_unlabeled(encode(images[i])))
                if copies[i]:
                    out.write(ref.with_copies(ref.encode_reference(name, index, probs[i]),
                                              copies[i]))
                    expected += [records.encode_pseudo_labeled(encode(images[i]), probs[i],
                                                               "topk:5")] * int(copies[i])
    with records.atomic_tfrecord_writer(str(root / "copies")) as writer:
        for record in expected:
            writer.write(record)
    return {"refs": str(root / "refs" / "train-*"), "src": str(root / "src" / "unlabeled-*"),
            "copies": str(root / "copies"), "count": int(copies.sum())}


def test_reference_records_read_their_images_beside_the_source_files(reference_set):
    """One pass over each reference shard and its source file gives the same images and
    (up to float16 rounding) the same targets as copy records, each repeated by its copies."""
    def read(pattern, **kwargs):
        return _collect(pipelines.pseudo_labeled_dataset(
            pattern, image_size=32, batch_size=100, training=False, num_classes=NUM_CLASSES,
            small_images=True, deterministic=True, cycle_length=1, **kwargs))

    x, y = read(reference_set["refs"], source_data=reference_set["src"])
    want_x, want_y = read(reference_set["copies"])
    assert len(x) == reference_set["count"] > 10
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_allclose(y, want_y, atol=1e-3)
    # Training (augmented images): shuffled records, still every copy once per epoch.
    train = pipelines.pseudo_labeled_dataset(
        reference_set["refs"], image_size=32, batch_size=reference_set["count"], training=True,
        num_classes=NUM_CLASSES, small_images=True, source_data=reference_set["src"],
        seed=1, shuffle_buffer=64)
    targets = [tuple(row) for row in np.round(next(iter(train))[1].numpy(), 4)]
    expected = [tuple(row) for row in np.round(y, 4)]
    assert sorted(targets) == sorted(expected) and targets != expected


def test_reference_records_need_their_source_files(reference_set, tmp_path):
    with pytest.raises(ValueError, match="unlabeled files they were labeled from"):
        pipelines.pseudo_labeled_dataset(reference_set["refs"], image_size=32, batch_size=4,
                                         training=False, num_classes=NUM_CLASSES)
    only_one = reference_set["src"].replace("unlabeled-*", "unlabeled-00000-of-00003")
    with pytest.raises(FileNotFoundError, match="unlabeled-00001-of-00003.*--unlabel_data"):
        pipelines.pseudo_labeled_dataset(reference_set["refs"], image_size=32, batch_size=4,
                                         training=False, num_classes=NUM_CLASSES,
                                         source_data=only_one)


def test_training_with_fewer_files_than_pipelines_is_an_error(small_set):
    two_files = sorted(glob.glob(small_set[0]))[:2]
    context = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0)
    with pytest.raises(ValueError, match="Only 2 training files .* for 3 input pipelines"):
        pipelines.labeled_dataset(two_files, image_size=32, batch_size=6, training=True,
                                  num_classes=NUM_CLASSES, label_offset=1, small_images=True,
                                  input_context=context)
