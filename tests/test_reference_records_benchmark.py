"""benchmarks/reference_records.py: its arguments, the loop commands of each setting, the label
set comparison, and the summary of partial and full results."""

import collections
import datetime

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from benchmark_modules import load_benchmark

from noisy_student import assets
from noisy_student.cli import flags as cli_flags


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("reference_records")


def test_arguments(bench):
    args, passthrough = bench.parse_args(["--settings=32px,224px", "--seeds=2,3",
                                          "--student_epochs=2"])
    assert args.settings == ["32px", "224px"] and args.seeds == [2, 3]
    assert passthrough == ["--student_epochs=2"]
    for bad in (["--settings=64px"], ["--seeds=1,x"], ["--seeds="], ["stray"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_each_settings_commands_pass_the_clis_checks(bench, tmp_path):
    """Every loop invocation of a seed, with demo.cfg, gets past flag validation, and the two
    students differ only in their storage."""
    flagfile = assets.config_path("demo")
    for setting in bench.SETTINGS:
        runs = {arm: bench.loop_flags(setting, 1, str(tmp_path / arm), arm, [])
                for arm in bench.ARMS}
        teacher = bench.loop_flags(setting, 1, str(tmp_path / "teacher"), None, [])
        for arm_flags, commands in [(teacher, bench.TEACHER_COMMANDS),
                                    *((f, bench.STUDENT_COMMANDS) for f in runs.values())]:
            for command in commands:
                with flagsaver.flagsaver():
                    flags.FLAGS(["test", f"--flagfile={flagfile}", *arm_flags, *command])
                    assets.resolve_flag_values(flags.FLAGS)  # as the CLI: sample_data/...
                    cli_flags.validate()
        copy, reference = ({f for f in runs[arm] if not f.startswith("--run_dir")}
                           for arm in ("copy", "reference"))
        assert copy ^ reference == {"--pseudo_label_storage=float16",
                                    "--pseudo_label_storage=reference"}
    assert bench.stage_of(("--mode=teacher",)) == "teacher"
    assert bench.stage_of(("--mode=eval", "--iteration=0")) == "teacher/eval"
    assert bench.stage_of(("--mode=filter", "--iteration=1")) == "iter1/filter"


def _rows(labels, probs, reference):
    rows = []
    for i, (label, prob) in enumerate(zip(labels, probs, strict=True)):
        dense = np.full(4, (1 - prob) / 3, dtype=np.float32)
        dense[label] = prob
        row = {"label": label, "prob": prob, "probabilities": dense, "copies": 1}
        row.update({"source": "u-0", "index": i} if reference else {"image": f"img{i}"})
        rows.append(row)
    return rows


def test_agreement_compares_image_by_image(bench):
    images = {("u-0", i): f"img{i}" for i in range(4)}
    copy = _rows([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6], reference=False)
    same = bench.agreement(copy, _rows([0, 1, 2, 3], [0.9, 0.8, 0.7, 0.6], True), images)
    assert same["argmax_agreement"] == 1.0 and same["max_confidence_difference"] == 0.0
    assert same["image_mismatches"] == 0 and same["images"] == 4
    other = bench.agreement(copy, _rows([0, 1, 2, 0], [0.9, 0.8, 0.75, 0.6], True), images)
    assert other["argmax_agreement"] == 0.75
    assert other["max_confidence_difference"] == pytest.approx(0.05)
    shifted = {**images, ("u-0", 3): "img0"}  # the reference names another image
    assert bench.agreement(copy, _rows([0, 1, 2, 3], [0.9] * 4, True),
                           shifted)["image_mismatches"] == 1
    with pytest.raises(ValueError, match="3 copy records against 4"):
        bench.agreement(copy[:3], _rows([0, 1, 2, 3], [0.9] * 4, True))


def test_kept_multiset_counts_copies(bench):
    images = {("u-0", 0): "a", ("u-0", 1): "b"}
    copy = [{"image": "a", "copies": 1}, {"image": "b", "copies": 1},
            {"image": "a", "copies": 1}]
    reference = [{"source": "u-0", "index": 0, "copies": 2},
                 {"source": "u-0", "index": 1, "copies": 1}]
    assert bench.kept_multiset(copy) == collections.Counter({"a": 2, "b": 1})
    assert bench.kept_multiset(reference, images) == bench.kept_multiset(copy)
    reference[0]["copies"] = 1
    assert bench.kept_multiset(reference, images) != bench.kept_multiset(copy)


def _record(seed, teacher, copy, reference):
    student = {"bytes_per_label_record": {"record": 100.0}, "train_seconds": 60.0}
    return {"seed": seed, "teacher_top1": teacher,
            "students": {"copy": {**student, "top1": copy},
                         "reference": {**student, "top1": reference}},
            "agreement": {"argmax_agreement": 1.0, "max_confidence_difference": 0.0,
                          "kept_multiset_equal": True}}


def test_summary_pairs_reference_with_copy_per_seed(bench):
    records = [_record(1, 0.40, 0.45, 0.46), _record(2, 0.42, 0.47, 0.47),
               _record(3, 0.44, 0.49, 0.47)]
    summary = bench.summarize(records)
    assert summary["n"] == 3 and summary["seeds"] == [1, 2, 3]
    d = summary["reference_minus_copy"]
    assert d["mean"] == pytest.approx(-1 / 3)  # +1, 0, -2 points
    half = 4.303 * np.std([1, 0, -2], ddof=1) / np.sqrt(3)
    assert (d["low"], d["high"]) == pytest.approx((-1 / 3 - half, -1 / 3 + half))
    assert d["excludes_zero"] is False
    assert summary["student_top1"]["copy"]["mean"] == pytest.approx(47.0)
    assert summary["teacher_top1"]["sd"] == pytest.approx(2.0)
    one = bench.summarize(records[:1])  # partial results: no interval, still a summary
    assert one["n"] == 1 and one["reference_minus_copy"]["low"] is None
    assert bench.summarize([]) == {"seeds": [], "n": 0}


def test_deadline(bench):
    at = datetime.datetime(2026, 1, 1, 14, 5)
    assert not bench.past_deadline(None, at)
    assert not bench.past_deadline("14:06", at)
    assert bench.past_deadline("14:05", at) and bench.past_deadline("9:30", at)


def test_records_written_by_the_package_are_read_back_and_matched(bench, tmp_path):
    """Copy and reference records of the same images and distributions (the package's own
    encoders) agree image by image, and equal filtered sets are the same multiset."""
    import tensorflow as tf

    from noisy_student.data.records import encode_pseudo_labeled, encode_unlabeled
    from noisy_student.data.reference_records import encode_references, with_copies

    rng = np.random.default_rng(0)
    pngs = [tf.io.encode_png(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).numpy()
            for _ in range(3)]
    probs = rng.dirichlet(np.ones(bench.NUM_CLASSES), size=3).astype(np.float32)
    source = tmp_path / "unlabeled-00000-of-00001"
    files = {name: str(tmp_path / name) for name in ("copy", "reference", "copy_kept",
                                                     "reference_kept")}
    references = encode_references(source.name, [0, 1, 2], probs)
    contents = {
        source: [encode_unlabeled(png) for png in pngs],
        "copy": [encode_pseudo_labeled(png, p, "float16")
                 for png, p in zip(pngs, probs, strict=True)],
        "reference": references,
        "copy_kept": [encode_pseudo_labeled(pngs[i], probs[i], "float16") for i in (2, 0, 2)],
        "reference_kept": [references[0], with_copies(references[2], 2)],
    }
    for name, records in contents.items():
        with tf.io.TFRecordWriter(str(files.get(name, name))) as writer:
            for record in records:
                writer.write(record)
    images = bench.source_images(str(source))
    copy = bench.read_records([files["copy"]], reference=False)
    reference = bench.read_records([files["reference"]], reference=True)
    assert [r["index"] for r in reference] == [0, 1, 2]
    compared = bench.agreement(copy, reference, images)
    assert compared["argmax_agreement"] == 1.0 and compared["image_mismatches"] == 0
    assert compared["max_confidence_difference"] == 0.0  # both store the float32 top-1
    assert compared["max_distribution_difference"] < 0.2  # top-5 + even rest vs float16
    assert reference[0]["bytes"] < copy[0]["bytes"]
    kept_copy = bench.read_records([files["copy_kept"]], reference=False)
    kept_reference = bench.read_records([files["reference_kept"]], reference=True)
    assert [r["copies"] for r in kept_reference] == [1, 2]
    assert bench.kept_multiset(kept_copy) == bench.kept_multiset(kept_reference, images)
