"""Teacher labeling of unlabeled shards, on real CIFAR-10 images and a tiny EfficientNet."""

import glob
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cifar_data import cifar_test_images
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(width_coefficient=0.25, depth_coefficient=0.25, small_images=True,
            input_shape=(32, 32, 3), classes=10)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cifar_png():
    return [png(image) for image in cifar_test_images(144)]


@pytest.fixture(scope="module")
def teacher(keras):
    from efficientnet_tf import create_model

    keras.utils.set_random_seed(0)
    return create_model("b0", classifier_activation=None, **TINY)


def write_unlabeled(directory, encoded, num_shards, extra=None):
    """Deals the images contiguously over `num_shards` files; `extra` maps a shard to raw
    serialized records appended to it."""
    import tensorflow as tf

    from noisy_student.data.records import encode_unlabeled

    os.makedirs(directory, exist_ok=True)
    per_shard = int(np.ceil(len(encoded) / num_shards))
    for s in range(num_shards):
        name = f"extra-{s:05d}-of-{num_shards:05d}"
        with tf.io.TFRecordWriter(os.path.join(directory, name)) as w:
            for data in encoded[s * per_shard:(s + 1) * per_shard]:
                w.write(encode_unlabeled(data))
            for record in (extra or {}).get(s, []):
                w.write(record)
    return os.path.join(directory, "extra-*")


def read_pseudo(pattern, num_classes=10):
    import tensorflow as tf

    from noisy_student.data.records import parse_pseudo_labeled

    out = []
    for path in sorted(glob.glob(pattern)):
        for serialized in tf.data.TFRecordDataset(path):
            parsed = parse_pseudo_labeled(serialized, num_classes)
            out.append((os.path.basename(path), parsed["image"].numpy(),
                        parsed["probabilities"].numpy(), int(parsed["label"]),
                        float(parsed["prob"])))
    return out


def reference_logits(model, encoded):
    """Independent path: Pillow decode, then the model in inference mode."""
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in encoded])
    return model.predict(pixels.astype("float32"), verbose=0, batch_size=64)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_soft_labels_match_the_model_on_pillow_decoded_images(tmp_path, cifar_png, teacher):
    from noisy_student.pseudo_labels.labeling import label_shards, pseudo_label_pattern

    images = cifar_png[:40]
    pattern = write_unlabeled(tmp_path / "in", images, 3)
    summary = label_shards(teacher, pattern, str(tmp_path / "out"), image_size=32,
                           small_images=True, batch_size=16)
    assert summary["num_labeled"] == 40 and summary["num_undecodable"] == 0
    assert summary["labeled_shards"] == [f"pseudo-{i:05d}-of-00003" for i in range(3)]
    records = read_pseudo(pseudo_label_pattern(str(tmp_path / "out")))
    assert [r[1] for r in records] == images  # every image, in input order, bytes unchanged
    expected = softmax(reference_logits(teacher, images))
    got = np.stack([r[2] for r in records])
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert [r[3] for r in records] == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose([r[4] for r in records], expected.max(axis=1), atol=2e-5)


def test_temperature_hard_and_probability_outputs(tf, keras, cifar_png, teacher):
    from noisy_student.pseudo_labels.labeling import make_label_fn, model_outputs_logits

    pixels = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in cifar_png[:8]])
    pixels = pixels.astype("float32")
    logits = teacher.predict(pixels, verbose=0)
    soft2 = make_label_fn(teacher, temperature=2.0)(tf.constant(pixels)).numpy()
    np.testing.assert_allclose(soft2, softmax(logits / 2), atol=2e-6)
    hard = make_label_fn(teacher, hard=True)(tf.constant(pixels)).numpy()
    np.testing.assert_array_equal(hard, np.eye(10)[logits.argmax(axis=1)])
    # A model ending in softmax: p^(1/T) renormalized equals softmax(logits / T).
    with_softmax = keras.Model(teacher.inputs, keras.layers.Softmax()(teacher.outputs[0]))
    assert model_outputs_logits(teacher) and not model_outputs_logits(with_softmax)
    soft_from_probs = make_label_fn(with_softmax, temperature=0.5)(tf.constant(pixels)).numpy()
    np.testing.assert_allclose(soft_from_probs, softmax(logits / 0.5), atol=2e-5)
    # flip_average: the mean over each image and its mirror; hard takes that mean's argmax.
    # (Logits scaled up: the untrained teacher's are ~1e-3, too flat to tell the views apart.)
    sharp = keras.Model(teacher.inputs, keras.layers.Rescaling(1000.0)(teacher.outputs[0]))
    logits, mirrored = (sharp.predict(x, verbose=0) for x in (pixels, pixels[:, :, ::-1]))
    mean = (softmax(logits / 2) + softmax(mirrored / 2)) / 2
    averaged = make_label_fn(sharp, temperature=2.0, from_logits=True,
                             flip_average=True)(tf.constant(pixels))
    np.testing.assert_allclose(averaged.numpy(), mean, atol=2e-5)
    assert not np.allclose(mean, softmax(logits / 2), atol=1e-2)  # the mirror changes labels
    hard_mean = (softmax(logits) + softmax(mirrored)) / 2
    hard_averaged = make_label_fn(sharp, hard=True, from_logits=True,
                                  flip_average=True)(tf.constant(pixels))
    np.testing.assert_array_equal(hard_averaged.numpy(), np.eye(10)[hard_mean.argmax(axis=1)])


def test_workers_split_shards_and_rerun_skips_complete_ones(tmp_path, cifar_png, teacher):
    from noisy_student.pseudo_labels.labeling import label_shards

    images = cifar_png[:30]
    pattern = write_unlabeled(tmp_path / "in", images, 5)
    out = str(tmp_path / "out")
    s0 = label_shards(teacher, pattern, out, image_size=32, small_images=True, batch_size=8,
                      worker_index=0, num_workers=2, storage="float16")
    s1 = label_shards(teacher, pattern, out, image_size=32, small_images=True, batch_size=8,
                      worker_index=1, num_workers=2, storage="float16")
    assert s0["labeled_shards"] == ["pseudo-00000-of-00005", "pseudo-00002-of-00005",
                                    "pseudo-00004-of-00005"]
    assert s1["labeled_shards"] == ["pseudo-00001-of-00005", "pseudo-00003-of-00005"]
    assert sorted(r[1] for r in read_pseudo(os.path.join(out, "pseudo-*"))) == sorted(images)
    mtimes = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(out, "pseudo-*"))}
    again = label_shards(teacher, pattern, out, image_size=32, small_images=True, batch_size=8,
                         worker_index=0, num_workers=2, storage="float16")
    assert again["labeled_shards"] == [] and len(again["skipped_complete_shards"]) == 3
    assert mtimes == {p: os.path.getmtime(p) for p in mtimes}
    with pytest.raises(ValueError, match="settings"):
        label_shards(teacher, pattern, out, image_size=32, small_images=True,
                     worker_index=0, num_workers=2, storage="float32")


def test_undecodable_records_are_counted_not_silently_dropped(tf, tmp_path, cifar_png, teacher):
    from noisy_student.data.records import encode_labeled, encode_unlabeled
    from noisy_student.pseudo_labels.labeling import label_shards

    images = cifar_png[:10]
    # Shard 0 gets garbage image bytes (record 5) and a record without image/encoded (record 6).
    no_image = tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})).SerializeToString()
    extra = {0: [encode_unlabeled(b"not an image at all"), no_image, encode_labeled(images[0], 3)]}
    pattern = write_unlabeled(tmp_path / "in", images, 2, extra=extra)
    out = str(tmp_path / "out")
    summary = label_shards(teacher, pattern, out, image_size=32, small_images=True, batch_size=4)
    assert summary["num_labeled"] == 11 and summary["num_undecodable"] == 2
    with open(os.path.join(out, "info", "pseudo-00000-of-00002.json")) as f:
        info = json.load(f)
    assert info["num_records"] == 8 and info["undecodable_indices"] == [5, 6]
    labeled = [r[1] for r in read_pseudo(os.path.join(out, "pseudo-*"))]
    assert labeled == images[:5] + [images[0]] + images[5:]


def test_truncated_file_is_labeled_up_to_the_damage_or_names_the_file_when_strict(
        tmp_path, cifar_png, teacher):
    from noisy_student.pseudo_labels.labeling import label_shards, label_totals

    pattern = write_unlabeled(tmp_path / "in", cifar_png[:6], 1)
    path = glob.glob(pattern)[0]
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:-7])  # truncated last record
    with pytest.raises(ValueError, match="extra-00000-of-00001.*after record 4"):
        label_shards(teacher, pattern, str(tmp_path / "strict"), image_size=32,
                     small_images=True, strict=True)
    out = str(tmp_path / "out")
    summary = label_shards(teacher, pattern, out, image_size=32, small_images=True)
    assert summary["num_labeled"] == 5
    assert [r[1] for r in read_pseudo(os.path.join(out, "pseudo-*"))] == cifar_png[:5]
    totals = label_totals(pattern, out)
    assert (totals["num_records"], totals["num_labeled"]) == (5, 5)
    assert list(totals["data_damaged_files"]) == ["extra-00000-of-00001"]
    assert totals["data_damaged_files"]["extra-00000-of-00001"] > 0  # bytes left unread


DRIVER = textwrap.dedent("""
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    from efficientnet_tf import create_model
    from noisy_student.pseudo_labels.labeling import label_shards

    model = create_model("b0", classifier_activation=None, **{tiny})
    model.load_weights(sys.argv[3])

    def slow_teacher(images, training=False):
        tf.py_function(lambda: time.sleep(0.1), [], [])  # keeps the job running long enough
        return model(images, training=training)

    label_shards(slow_teacher, sys.argv[1], sys.argv[2], image_size=32, small_images=True,
                 batch_size=8, from_logits=True)
""")


def test_killed_labeling_job_resumes_without_loss_or_duplicates(tmp_path, cifar_png, teacher):
    from noisy_student.pseudo_labels.labeling import label_shards

    images = cifar_png[:144]
    pattern = write_unlabeled(tmp_path / "in", images, 6)
    out = str(tmp_path / "out")
    weights = str(tmp_path / "teacher.weights.h5")
    teacher.save_weights(weights)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tiny=repr(TINY)))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, str(driver), pattern, out, weights], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # A shard is complete once its info file is written (after the shard's own rename), so wait
    # for that: killing between the two leaves a shard that the rerun must label again.
    first = os.path.join(out, "info", "pseudo-00000-of-00006.json")
    deadline = time.time() + 600  # a guard against a hang only
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    finished = glob.glob(os.path.join(out, "info", "*.json"))
    assert 1 <= len(finished) < 6  # killed in the middle of the job
    # A kill between a shard's rename and its info file: the shard counts as unfinished.
    os.remove(finished.pop())

    summary = label_shards(teacher, pattern, out, image_size=32, small_images=True, batch_size=32)
    assert len(summary["skipped_complete_shards"]) == len(finished)
    records = read_pseudo(os.path.join(out, "pseudo-*"))
    labeled = [r[1] for r in records]
    assert len(labeled) == len(set(labeled)) == len(images)  # no duplicates
    assert set(labeled) == set(images)  # none missing
    assert not glob.glob(os.path.join(out, ".*"))  # no temp files left behind
    by_image = {r[1]: r[2] for r in records}
    expected = softmax(reference_logits(teacher, images))
    np.testing.assert_allclose(np.stack([by_image[b] for b in images]), expected, atol=2e-5)


def test_shard_with_no_decodable_image_is_an_error(tmp_path, teacher):
    from noisy_student.data.records import encode_unlabeled
    from noisy_student.pseudo_labels.labeling import label_shards

    pattern = write_unlabeled(tmp_path / "in", [], 1,
                              extra={0: [encode_unlabeled(b"garbage")] * 3})
    with pytest.raises(ValueError, match="none of the 3 records"):
        label_shards(teacher, pattern, str(tmp_path / "out"), image_size=32, small_images=True)
    assert not os.path.exists(tmp_path / "out" / "pseudo-00000-of-00001")


@pytest.mark.parametrize("storage", ["float16", "reference"])
def test_stored_confidence_counts_spare_the_filter_a_pass(tf, tmp_path, cifar_png, teacher,
                                                          storage):
    """Each shard's info holds the class x confidence counts of its records' own label and
    prob; the filter sums them (one pass over the records) and keeps exactly what it keeps
    when it has to count from the records."""
    import shutil

    from noisy_student.pseudo_labels.balance import bin_counts, dense_counts
    from noisy_student.pseudo_labels.filtering import filter_and_balance
    from noisy_student.pseudo_labels.labeling import label_shards, pseudo_label_pattern

    pattern = write_unlabeled(tmp_path / "in", cifar_png[:60], 3)
    labels_dir = tmp_path / "labels"
    label_shards(teacher, pattern, str(labels_dir), image_size=32, small_images=True,
                 batch_size=16, storage=storage)
    spec = {"label": tf.io.FixedLenFeature([], tf.int64),
            "prob": tf.io.FixedLenFeature([], tf.float32)}
    for path in sorted(glob.glob(pseudo_label_pattern(str(labels_dir)))):
        parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
        labels = np.array([int(p["label"]) for p in parsed])
        probs = np.array([p["prob"].numpy() for p in parsed])
        with open(labels_dir / "info" / (os.path.basename(path) + ".json")) as f:
            stored = dense_counts(json.load(f)["confidence_counts"])
        np.testing.assert_array_equal(stored, bin_counts(labels, probs, 10))
        assert stored.sum() == len(parsed) == 20

    bare_dir = tmp_path / "bare"
    shutil.copytree(labels_dir, bare_dir, ignore=shutil.ignore_patterns("info"))
    args = dict(num_classes=10, num_image_per_class=8, min_threshold=0.0, seed=2,
                num_output_shards=3)
    with_counts = filter_and_balance(pseudo_label_pattern(str(labels_dir)),
                                     str(tmp_path / "f1"), **args)
    counted = filter_and_balance(pseudo_label_pattern(str(bare_dir)), str(tmp_path / "f2"),
                                 **args)
    assert with_counts["passes_over_records"] == 1.0 and counted["passes_over_records"] == 2.0
    assert with_counts["reference"] == (storage == "reference")
    for key in ("counts", "thresholds", "totals", "kept_per_class", "written_per_class"):
        assert with_counts[key] == counted[key], key
    assert with_counts["num_written"] > 0
    written = [sorted(glob.glob(str(tmp_path / f / "train-*"))) for f in ("f1", "f2")]
    assert [open(a, "rb").read() for a in written[0]] == [open(b, "rb").read()
                                                          for b in written[1]]
    # A label shard damaged after labeling (its size no longer matches its info) is counted
    # from what is readable, and listed, not fatal.
    damaged = labels_dir / "pseudo-00002-of-00003"
    damaged.write_bytes(damaged.read_bytes()[:-5])
    after = filter_and_balance(pseudo_label_pattern(str(labels_dir)), str(tmp_path / "f3"),
                               **args)
    assert after["passes_over_records"] == 1 + 1 / 3
    assert list(after["damaged_files"]) == ["pseudo-00002-of-00003"]
    assert after["num_input_records"] == sum(map(sum, after["counts"])) == 59
    if storage == "reference":  # the student reads the kept images from the unlabeled files
        from noisy_student.data.pipelines import pseudo_labeled_dataset

        dataset = pseudo_labeled_dataset(str(tmp_path / "f1" / "train-*"), image_size=32,
                                         batch_size=64, training=False, num_classes=10,
                                         small_images=True, source_data=pattern)
        images = np.concatenate([x.numpy() for x, _ in dataset])
        assert len(images) == with_counts["num_written"]
        sources = {np.asarray(Image.open(io.BytesIO(b))).astype("float32").tobytes()
                   for b in cifar_png[:60]}
        assert all(image.tobytes() in sources for image in images)
