"""Filter-and-balance rule (reference filter_unlabel.py) and the TFRecord stage around it."""

import glob
import math
import os

import numpy as np
import pytest

from noisy_student.pseudo_labels.filtering import (
    NUM_BINS,
    bin_counts,
    class_thresholds,
    confidence_bins,
    copies_per_image,
)

# ----------------------------------------------------------------------------- independent model


def brute_force_thresholds(labels, probs, num_classes, num_image, min_threshold, max_prob,
                           use_all=False):
    """Threshold/total per class by direct counting (no bins): for each grid threshold t from
    1.00 down, count images with p >= t whose own bin lies below max_prob."""
    grid = [j / 100 for j in range(101)]
    # Images in a bin whose threshold is >= max_prob are never counted: those with p >= cap.
    cap = next((t for t in grid if t >= max_prob), math.inf)
    lowest = round(min_threshold * 100)
    out = []
    for c in range(num_classes):
        p_c = [float(p) for p, y in zip(probs, labels, strict=True) if y == c]
        chosen = None
        for j in range(100, lowest - 1, -1):
            n = sum(1 for p in p_c if grid[j] <= p < cap)
            if not use_all and n >= num_image:
                chosen = (grid[j], n)
                break
        if chosen is None:
            chosen = (grid[lowest], sum(1 for p in p_c if grid[lowest] <= p < cap))
        out.append(chosen)
    return out


def test_bins_follow_float64_comparison_with_grid():
    # 0.29 in float32 is 0.2899999916..., below 29/100: it belongs to bin 28, as in the reference
    # (float64 comparison with j/100). 1.0000001 (float overshoot) lands in bin 100.
    probs = np.array([0.0, 0.29, 0.3, 0.999, 1.0, 1.0000001], dtype=np.float64)
    assert confidence_bins(probs).tolist() == [0, 29, 30, 99, 100, 100]
    assert confidence_bins(np.float32([0.29])).tolist() == [28]
    with pytest.raises(ValueError, match="NaN"):
        confidence_bins(np.array([0.5, np.nan]))


def test_bin_counts_against_numpy_histogram():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 500)
    probs = rng.uniform(0, 1, 500)
    counts = bin_counts(labels, probs, 4)
    assert counts.shape == (4, NUM_BINS)
    for c in range(4):
        # Independent: integer floor of 100*p is the bin away from edges (uniform draws never
        # hit an edge exactly).
        expected = np.bincount(np.floor(probs[labels == c] * 100).astype(int), minlength=101)
        np.testing.assert_array_equal(counts[c], expected)
    with pytest.raises(ValueError, match="num_classes"):
        bin_counts(np.array([4]), np.array([0.5]), 4)


@pytest.mark.parametrize("num_image,min_threshold,max_prob,use_all", [
    (50, 0.3, 2.0, False), (5, 0.3, 2.0, False), (400, 0.3, 2.0, False),
    (50, 0.0, 0.9, False), (30, 0.55, 0.955, False), (50, 0.3, 2.0, True),
])
def test_thresholds_match_brute_force(num_image, min_threshold, max_prob, use_all):
    rng = np.random.default_rng(7)
    n, num_classes = 1500, 5
    labels = rng.integers(0, num_classes, n)
    # Skewed confidences per class, plus exact grid values and overshoots above 1.
    probs = rng.beta(2 + labels, 2, n)
    probs[:40] = rng.integers(0, 101, 40) / 100
    probs[40:45] = 1.0 + 1e-7
    counts = bin_counts(labels, probs, num_classes)
    thresholds, totals = class_thresholds(counts, num_image, min_threshold=min_threshold,
                                          max_prob=max_prob, use_all=use_all)
    expected = brute_force_thresholds(labels, probs, num_classes, num_image, min_threshold,
                                      max_prob, use_all)
    assert [(float(t), int(n)) for t, n in zip(thresholds, totals, strict=True)] == expected


def test_hand_made_big_and_small_classes():
    # Class 0: 5 images at .955 (bin 95), 5 at .905 (bin 90), 10 at .805, num_image=8:
    # the walk reaches 5 at bin 95 and 10 at bin 90 -> threshold .90, total 10, 0.8 copies.
    # Class 1: 3 images at .5 and one at .2 (< min_threshold): never reaches 8 ->
    # threshold .30, total 3, 8/3 copies. Class 2: only .25 -> nothing kept.
    probs = np.array([.955] * 5 + [.905] * 5 + [.805] * 10 + [.5] * 3 + [.2] + [.25] * 2)
    labels = np.array([0] * 20 + [1] * 4 + [2] * 2)
    counts = bin_counts(labels, probs, 3)
    thresholds, totals = class_thresholds(counts, 8, min_threshold=0.3)
    assert thresholds.tolist() == [0.9, 0.3, 0.3]
    assert totals.tolist() == [10, 3, 0]
    uniforms = np.array([.1, .9, .5, .79, .81] * 2 + [0.0] * 10 + [.1, .7, .5, .0] + [.0, .0])
    copies = copies_per_image(labels, probs, thresholds, totals, 8, uniforms)
    # Rate .8: copy iff u < .8. Rate 2.667: 2 copies + 1 iff u < .667.
    assert copies.tolist() == ([1, 0, 1, 1, 0] * 2 + [0] * 10 + [3, 2, 3, 0] + [0, 0])
    capped = copies_per_image(labels, probs, thresholds, totals, 8, uniforms, upsample=False)
    assert capped.tolist() == ([1, 0, 1, 1, 0] * 2 + [0] * 10 + [1, 1, 1, 0] + [0, 0])


def test_use_all_keeps_everything_above_min_threshold_once():
    probs = np.array([.99, .95, .31, .3, .29, .1])
    labels = np.zeros(6, dtype=int)
    counts = bin_counts(labels, probs, 1)
    thresholds, totals = class_thresholds(counts, 2, min_threshold=0.3, use_all=True)
    assert thresholds.tolist() == [0.3] and totals.tolist() == [4]
    copies = copies_per_image(labels, probs, thresholds, totals, 2, np.full(6, .5), use_all=True)
    assert copies.tolist() == [1, 1, 1, 1, 0, 0]


def test_max_prob_excludes_top_bins_from_totals():
    # max_prob=0.95: bins 95..100 are skipped in the walk; images with p <= .95 are still kept.
    probs = np.array([1.0, .97, .95, .93, .92])
    labels = np.zeros(5, dtype=int)
    thresholds, totals = class_thresholds(bin_counts(labels, probs, 1), 2, max_prob=0.95)
    assert thresholds.tolist() == [0.92] and totals.tolist() == [2]
    copies = copies_per_image(labels, probs, thresholds, totals, 2, np.zeros(5), max_prob=0.95)
    assert copies.tolist() == [0, 0, 1, 1, 1]


def test_balancing_statistics_on_large_sample():
    """A big class is subsampled to ~num_image; a small one duplicated ~num_image/total times."""
    rng = np.random.default_rng(3)
    big = rng.uniform(0.3, 1.0, 20000)
    small = rng.uniform(0.3, 1.0, 300)
    probs = np.concatenate([big, small])
    labels = np.array([0] * len(big) + [1] * len(small))
    num_image = 2000
    thresholds, totals = class_thresholds(bin_counts(labels, probs, 2), num_image)
    copies = copies_per_image(labels, probs, thresholds, totals, num_image,
                              rng.uniform(size=len(probs)))
    # Big class: the threshold is the highest grid value with >= 2000 images above it.
    above = (big >= thresholds[0]).sum()
    assert above >= num_image and (big >= thresholds[0] + 0.01).sum() < num_image
    written_big = copies[:len(big)].sum()
    sd = math.sqrt(above * (num_image / above) * (1 - num_image / above))
    assert abs(written_big - num_image) < 5 * sd + 1
    assert copies[:len(big)].max() == 1
    # Small class: every image kept 6 or 7 times (2000/300 = 6.67), about 2000 in total.
    kept_small = copies[len(big):]
    assert thresholds[1] == 0.3 and set(kept_small.tolist()) <= {6, 7}
    assert abs(kept_small.mean() - num_image / 300) < 0.15


def test_invalid_settings_are_rejected():
    counts = np.zeros((2, NUM_BINS), dtype=np.int64)
    with pytest.raises(ValueError, match="grid"):
        class_thresholds(counts, 10, min_threshold=0.305)
    with pytest.raises(ValueError, match="max_prob"):
        class_thresholds(counts, 10, min_threshold=0.3, max_prob=0.3)
    with pytest.raises(ValueError, match="num_image"):
        class_thresholds(counts, 0)


# ----------------------------------------------------------------------------- TFRecord stage


def _png(image):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def pseudo_input(tmp_path_factory):
    """240 real CIFAR-10 PNGs with synthetic teacher distributions, in two files: class 0 is
    big and confident, class 1 small, the rest in between (some below min_threshold)."""
    import tensorflow as tf
    from cifar_data import cifar_test_images

    from noisy_student.data.records import encode_pseudo_labeled

    rng = np.random.default_rng(5)
    images = [_png(im) for im in cifar_test_images(240)]
    labels = np.where(np.arange(240) < 120, 0, rng.integers(1, 10, 240))
    labels[rng.choice(np.arange(120, 240), 110, replace=False)] = rng.integers(2, 10, 110)
    top = np.where(labels == 0, rng.uniform(0.6, 1.0, 240), rng.uniform(0.15, 0.95, 240))
    serialized = []
    for y, p, data in zip(labels, top, images, strict=True):
        probs = np.full(10, (1 - p) / 9)
        probs[y] = p
        serialized.append(encode_pseudo_labeled(data, probs.astype(np.float32)))
    directory = tmp_path_factory.mktemp("pseudo")
    for s in range(2):
        with tf.io.TFRecordWriter(str(directory / f"pseudo-{s:05d}-of-00002")) as writer:
            for record in serialized[s * 120:(s + 1) * 120]:
                writer.write(record)
    # The confidence the filter sees is the stored float32 `prob`.
    stored = np.array([np.float32(p) for p in top])
    return {"pattern": str(directory / "pseudo-*"), "serialized": serialized,
            "labels": labels, "probs": stored}


def _read_outputs(directory):
    import glob

    import tensorflow as tf

    shards = sorted(glob.glob(str(directory / "train-*")))
    return [[r.numpy() for r in tf.data.TFRecordDataset(s)] for s in shards]


def test_filter_and_balance_stage(tmp_path, pseudo_input):
    import json

    from PIL import Image

    from noisy_student.pseudo_labels.filtering import filter_and_balance

    num_image = 15
    out = tmp_path / "filtered"
    stats = filter_and_balance(pseudo_input["pattern"], str(out), num_classes=10,
                               num_image_per_class=num_image, num_output_shards=3,
                               chunk_size=40, seed=1)
    labels, probs = pseudo_input["labels"], pseudo_input["probs"]
    expected = brute_force_thresholds(labels, probs, 10, num_image, 0.3, 2.0)
    assert list(zip(stats["thresholds"], stats["totals"], strict=True)) == expected
    shards = _read_outputs(out)
    # 3 output files asked for, 2 input files: 2 each, each input's records dealt over its own.
    assert len(shards) == 4 and all(shards)
    index_of = {record: i for i, record in enumerate(pseudo_input["serialized"])}
    written = [index_of[record] for shard in shards for record in shard]  # bytes unchanged
    copies = np.bincount(written, minlength=len(labels))
    for i, (y, p) in enumerate(zip(labels, probs, strict=True)):
        threshold, total = expected[y]
        rate = num_image / total if total else 0
        if p < threshold:
            assert copies[i] == 0
        else:
            assert copies[i] in (math.floor(rate), math.ceil(rate)), (i, rate, copies[i])
    per_class = np.bincount(labels[written], minlength=10)
    assert per_class.tolist() == stats["written_per_class"]
    assert abs(per_class[0] - num_image) <= 6  # the big class is subsampled to ~num_image
    assert stats["num_written"] == len(written) and stats["num_input_records"] == 240
    assert written[:40] != sorted(written[:40])  # shuffled in chunks
    with open(out / "stats.json") as f:
        assert json.load(f)["thresholds"] == stats["thresholds"]
    Image.open(out / stats["histogram"]).verify()

    # Same seed -> identical files; a rerun skips; other settings on the same dir are refused.
    again = tmp_path / "again"
    filter_and_balance(pseudo_input["pattern"], str(again), num_classes=10,
                       num_image_per_class=num_image, num_output_shards=3, chunk_size=40, seed=1)
    assert _read_outputs(again) == shards
    mtime = os.path.getmtime(out / "train-00000-of-00004")
    assert filter_and_balance(pseudo_input["pattern"], str(out), num_classes=10,
                              num_image_per_class=num_image, num_output_shards=3,
                              chunk_size=40, seed=1) == stats
    assert os.path.getmtime(out / "train-00000-of-00004") == mtime
    with pytest.raises(ValueError, match="other inputs or settings"):
        filter_and_balance(pseudo_input["pattern"], str(out), num_classes=10,
                           num_image_per_class=num_image + 1, num_output_shards=3)


def test_filter_rejects_labels_beyond_num_classes(tmp_path, pseudo_input):
    from noisy_student.pseudo_labels.filtering import filter_and_balance

    with pytest.raises(Exception, match="num_classes"):
        filter_and_balance(pseudo_input["pattern"], str(tmp_path / "o"), num_classes=5,
                           num_image_per_class=10)


def test_damaged_pseudo_label_file_is_read_up_to_the_damage_or_raises_when_strict(
        tmp_path, pseudo_input):
    import shutil

    from noisy_student.pseudo_labels.filtering import filter_and_balance

    folder = tmp_path / "in"
    shutil.copytree(os.path.dirname(pseudo_input["pattern"]), folder)
    damaged = folder / "pseudo-00001-of-00002"
    sizes = [len(r) + 16 for r in pseudo_input["serialized"][120:]]
    data = damaged.read_bytes()
    damaged.write_bytes(data[:sum(sizes[:50]) + sizes[50] // 2])  # cut inside record 50
    with pytest.raises(ValueError, match="pseudo-00001-of-00002.*after record 49"):
        filter_and_balance(str(folder / "pseudo-*"), str(tmp_path / "strict"), num_classes=10,
                           num_image_per_class=15, strict=True)
    stats = filter_and_balance(str(folder / "pseudo-*"), str(tmp_path / "out"), num_classes=10,
                               num_image_per_class=15)
    assert stats["num_input_records"] == 120 + 50
    assert stats["damaged_files"] == {"pseudo-00001-of-00002": sizes[50] // 2}  # bytes unread


# ----------------------------------------------------------------------------- many workers

BEFORE_ISSUE_30 = "8502769"  # the single-process, multi-pass filter this one replaces
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILTER_ARGS = dict(num_classes=10, num_image_per_class=15, num_output_shards=10, chunk_size=7,
                   seed=4)


@pytest.fixture(scope="module")
def five_shards(tmp_path_factory, pseudo_input):
    """The 240 pseudo-labeled records of `pseudo_input` over five files."""
    import tensorflow as tf

    directory = tmp_path_factory.mktemp("five")
    for s in range(5):
        with tf.io.TFRecordWriter(str(directory / f"pseudo-{s:05d}-of-00005")) as writer:
            for record in pseudo_input["serialized"][s * 48:(s + 1) * 48]:
                writer.write(record)
    return str(directory / "pseudo-*")


def _written(directory):
    """{file name: its records} of a filter output."""
    names = [os.path.basename(f) for f in sorted(glob.glob(str(directory / "train-*")))]
    return dict(zip(names, _read_outputs(directory), strict=True))


def _filter_before_issue_30():
    """The filter module as it was before the one-pass distributed filter (from git)."""
    import subprocess
    import types

    shown = subprocess.run(["git", "show", f"{BEFORE_ISSUE_30}:noisy_student/filtering.py"],
                           cwd=REPO_ROOT, capture_output=True, text=True)
    if shown.returncode:
        pytest.skip(f"git history with {BEFORE_ISSUE_30} is not available")
    module = types.ModuleType("filtering_before")
    exec(compile(shown.stdout, "filtering_before.py", "exec"), module.__dict__)  # noqa: S102
    return module


@pytest.mark.parametrize("num_image", [15, 40])
def test_keeps_and_copies_exactly_what_the_filter_before_did(tmp_path, five_shards, num_image):
    """Same input, same seed: the same thresholds, per-class kept and written counts, and the
    same multiset of written records as the single-process filter it replaces."""
    import collections

    from noisy_student.pseudo_labels.filtering import filter_and_balance

    before = _filter_before_issue_30()
    args = {**FILTER_ARGS, "num_image_per_class": num_image}
    old = before.filter_and_balance(five_shards, str(tmp_path / "old"), **args)
    new = filter_and_balance(five_shards, str(tmp_path / "new"), **args)
    for key in ("thresholds", "totals", "kept_per_class", "written_per_class",
                "num_input_records", "num_written", "counts"):
        assert new[key] == old[key], key
    assert 0 < new["num_written"] and min(new["copy_rates"]) < 1 < max(new["copy_rates"])

    def multiset(directory):
        return collections.Counter(r for shard in _read_outputs(directory) for r in shard)

    assert multiset(tmp_path / "new") == multiset(tmp_path / "old")


def test_one_two_or_three_workers_write_the_same_files(tmp_path, five_shards):
    """Workers run concurrently (threads, each its own share); whatever their number, the
    output files are identical, and so are the merged statistics every worker returns."""
    from concurrent.futures import ThreadPoolExecutor

    from noisy_student.pseudo_labels import filtering

    outputs, stats = {}, {}
    for count in (1, 2, 3):
        out = str(tmp_path / f"workers{count}")
        with ThreadPoolExecutor(count) as pool:
            results = list(pool.map(lambda w, out=out, count=count: filtering.filter_and_balance(
                five_shards, out, worker_index=w, num_workers=count, wait_timeout=600,
                poll_seconds=0.05, **FILTER_ARGS), range(count)))
        assert all(r == results[0] for r in results)
        outputs[count], stats[count] = _written(tmp_path / f"workers{count}"), results[0]
    assert len(outputs[1]) == 10 and sum(map(len, outputs[1].values())) == stats[1]["num_written"]
    assert outputs[1] == outputs[2] == outputs[3]
    assert stats[1] == stats[2] == stats[3]
    assert stats[1]["passes_over_records"] == 2.0  # no labeling counts: read once to count


KILLED_DRIVER = """
import sys, time
import noisy_student.pseudo_labels.filtering as filtering

original = filtering.filter_shard

def slow(*args, **kwargs):  # keeps the job running long enough to be killed in the middle
    result = original(*args, **kwargs)
    time.sleep(1.0)
    return result

filtering.filter_shard = slow
filtering.filter_and_balance(sys.argv[1], sys.argv[2], **{args})
"""


def test_killed_filter_reruns_to_the_same_records(tmp_path, five_shards):
    import signal
    import subprocess
    import sys
    import time

    from noisy_student.pseudo_labels.filtering import PARTS_DIR, filter_and_balance

    out = tmp_path / "killed"
    driver = tmp_path / "driver.py"
    driver.write_text(KILLED_DRIVER.format(args=repr(FILTER_ARGS)))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.Popen([sys.executable, str(driver), five_shards, str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / PARTS_DIR / "pseudo-00000-of-00005.json"
    deadline = time.time() + 600  # a guard against a hang only
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert 1 <= len(os.listdir(out / PARTS_DIR)) < 5 and not (out / "stats.json").exists()

    resumed = filter_and_balance(five_shards, str(out), **FILTER_ARGS)
    clean = filter_and_balance(five_shards, str(tmp_path / "clean"), **FILTER_ARGS)
    assert resumed == clean
    assert _written(out) == _written(tmp_path / "clean")
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temps left
