"""Fault suite: damaged data, changed flags, concurrent commands, killed writers and bad inputs,
run through the `noisy-student` command line (in this process where one command is enough,
in subprocesses where two must run at once or one is killed)."""

import collections
import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from absl import flags
from absl.testing import flagsaver

from noisy_student import assets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = assets.SAMPLE_DIR
NUM_UNLABELED_SHARDS, PER_SHARD = 4, 80  # worker 0 labels shards 0 and 2, worker 1 1 and 3
CORRUPT_SHARD, CORRUPT_RECORD = 3, 40  # damaged bytes inside this record of this shard
UNDECODABLE_SHARD, UNDECODABLE_RECORD = 1, 7


def tiny_flags(run_dir, *extra) -> list[str]:
    return [
        f"--run_dir={run_dir}",
        f"--label_data={os.path.join(SAMPLE, 'train-00000-of-00004')}",
        "--num_classes=10", "--small_images", "--teacher_model=b0", "--student_models=b0",
        "--width_coefficient=0.25", "--depth_coefficient=0.25", "--train_batch_size=32",
        "--eval_batch_size=8", "--quiet", *extra,
    ]


def cli(*args: str) -> tuple[int, str, str]:
    """Runs the CLI's main in this process on a fresh parse of `args`; (exit status, stdout,
    stderr)."""
    from noisy_student.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["noisy-student", *args])
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                main.main(["noisy-student"])
                code = 0
            except SystemExit as exit_:
                code = exit_.code
    return code, stdout.getvalue(), stderr.getvalue()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def save_teacher(path: str, num_classes: int = 10) -> str:
    """Weights of the tiny teacher that the flags of `tiny_flags` build."""
    import keras

    from noisy_student.pipeline.loop import Run, RunConfig
    from noisy_student.pipeline.stages import model_fn

    config = RunConfig(run_dir=os.path.dirname(path), num_classes=num_classes,
                       small_images=True, width_coefficient=0.25, depth_coefficient=0.25)
    keras.utils.set_random_seed(0)
    model_fn(Run(config).context, 0, for_training=False)().save_weights(path)
    return path


@pytest.fixture(scope="module")
def teacher_weights(tmp_path_factory, tf, keras):
    """--teacher_checkpoint for the tiny 10-class teacher."""
    return save_teacher(str(tmp_path_factory.mktemp("teacher") / "teacher.weights.h5"))


def records_of(tf, path):
    return [bytes(r) for r in tf.data.TFRecordDataset(path).ignore_errors().as_numpy_iterator()]


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory, tf):
    """320 bundled unlabeled images in 4 shards; shard 1 holds one undecodable image and shard 3
    has damaged bytes inside record 40. Returns (pattern, readable images)."""
    from noisy_student.data.records import encode_unlabeled, parse_unlabeled

    folder = tmp_path_factory.mktemp("unlabeled")
    serialized = records_of(tf, os.path.join(SAMPLE, "unlabeled-00000-of-00008"))
    readable = []
    for s in range(NUM_UNLABELED_SHARDS):
        shard = serialized[s * PER_SHARD:(s + 1) * PER_SHARD]
        if s == UNDECODABLE_SHARD:
            shard[UNDECODABLE_RECORD] = encode_unlabeled(b"not an image at all")
        path = folder / f"unlabeled-{s:05d}-of-{NUM_UNLABELED_SHARDS:05d}"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for record in shard:
                writer.write(record)
        kept = shard[:CORRUPT_RECORD] if s == CORRUPT_SHARD else shard
        readable += [parse_unlabeled(r)["image"].numpy() for i, r in enumerate(kept)
                     if not (s == UNDECODABLE_SHARD and i == UNDECODABLE_RECORD)]
        if s == CORRUPT_SHARD:  # flip bytes in the middle of record CORRUPT_RECORD's data
            offset = sum(len(r) + 16 for r in shard[:CORRUPT_RECORD]) + 12 + 40
            data = bytearray(path.read_bytes())
            data[offset:offset + 8] = bytes(b ^ 0xFF for b in data[offset:offset + 8])
            path.write_bytes(bytes(data))
    return str(folder / "unlabeled-*"), readable


# ------------------------------------------------------------------ 5: errors after validation


def test_missing_teacher_is_one_line_and_status_2_unless_traceback(tmp_path):
    from noisy_student.pipeline.loop import RunError

    args = tiny_flags(tmp_path / "run", "--mode=label",
                      f"--unlabel_data={os.path.join(SAMPLE, 'unlabeled-00000-of-00008')}")
    code, _, stderr = cli(*args)
    assert code == 2
    assert error_lines(stderr) == [
        f"noisy-student: error: No trained teacher in {tmp_path / 'run' / 'teacher'}: run the "
        "loop (or --mode=teacher) first, or pass --teacher_checkpoint. (--traceback shows the "
        "stack)"]
    with pytest.raises(RunError, match="No trained teacher"):
        cli(*args, "--traceback")


def test_full_disk_is_one_line_and_status_2(tmp_path, monkeypatch):
    import errno

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr("noisy_student.run.directory.write_json_atomic", full)
    code, _, stderr = cli(*tiny_flags(tmp_path / "run", "--mode=teacher"))
    assert code == 2
    [line] = error_lines(stderr)
    assert "No space left on device" in line and "manifest.json" in line


def test_label_out_of_range_is_one_line_naming_the_file(tmp_path, tf, keras):
    weights = save_teacher(str(tmp_path / "three.weights.h5"), num_classes=3)
    eval_data = os.path.join(SAMPLE, "validation-00000-of-00002")
    code, _, stderr = cli(*tiny_flags(tmp_path / "run", "--mode=eval", "--iteration=0",
                                   "--num_classes=3", f"--teacher_checkpoint={weights}",
                                   f"--eval_data={eval_data}"))
    assert code == 2
    [line] = error_lines(stderr)
    assert "is outside [0, 3)" in line and f"of {eval_data}" in line
    assert "Traceback" not in stderr


# --------------------------------------------------------------- 2: run-directory fingerprint


@pytest.fixture(scope="module")
def labeled(tmp_path_factory, tf):
    """Two labeled files as a comma-separated list: the first 250 bundled training images, and
    64 more with damaged bytes inside record 30. Returns (flag value, damaged path)."""
    folder = tmp_path_factory.mktemp("labeled")
    paths = [str(folder / "good-00000-of-00001"), str(folder / "damaged-00000-of-00001")]
    whole = records_of(tf, os.path.join(SAMPLE, "train-00000-of-00004"))
    more = records_of(tf, os.path.join(SAMPLE, "train-00001-of-00004"))[:64]
    for path, records in zip(paths, (whole, more), strict=True):
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
    offset = sum(len(r) + 16 for r in more[:30]) + 12 + 40
    data = bytearray(open(paths[1], "rb").read())
    data[offset:offset + 8] = bytes(b ^ 0xFF for b in data[offset:offset + 8])
    open(paths[1], "wb").write(bytes(data))
    return ",".join(paths), paths[1]


def test_damaged_labeled_file_trains_and_reports_then_changed_flags_stop(
        tmp_path, teacher_weights, labeled, caplog):
    """Item 1 (training past a damaged file, totals in manifest, log and table) and item 2
    (settings recorded per stage; a rerun with other flags stops, or redoes on request)."""
    label_data, damaged = labeled
    run_dir = tmp_path / "run"
    first = tiny_flags(run_dir, "--mode=teacher", f"--label_data={label_data}",
                       "--train_epochs=0.25")
    code, strict_err = cli(*[*first, f"--run_dir={tmp_path / 'strict'}", "--strict_data"])[::2]
    assert code == 2
    [line] = error_lines(strict_err)
    assert f"Damaged TFRecord file {damaged}" in line and "after record 29" in line

    with caplog.at_level(logging.WARNING):
        code, table, stderr = cli(*first)
    assert code == 0, stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    teacher = manifest["stages"]["teacher"]
    assert teacher["steps"] == int(0.25 * (250 + 30) / 32)  # the 30 whole records count
    assert list(teacher["data_damaged_files"]) == [damaged]
    assert teacher["data_images"] > 0 and teacher["data_skipped"] == 0
    assert "damaged: damaged-00000-of-00001" in table and "bad data: 0 undecodable" in table
    assert "Stage teacher skipped 0 undecodable images; damaged files" in caplog.text
    assert manifest["settings"]["teacher"]["teacher_model"] == "efficientnet-b0"

    # Settings that do not change results never block.
    assert cli(*first, "--noquiet", "--summary_every=7", "--checkpoint_every=3")[0] == 0

    changed = [*first, "--teacher_model=b3", "--num_classes=5"]
    code, _, stderr = cli(*changed)
    assert code == 2
    [line] = error_lines(stderr)
    assert "--num_classes was 10, now 5" in line
    assert "--teacher_model was 'efficientnet-b0', now 'efficientnet-b3'" in line
    assert "first affected stage is teacher" in line
    assert "new --run_dir" in line and "--redo_changed_stages" in line
    assert json.loads((run_dir / "manifest.json").read_text()) == manifest  # nothing done

    assert list((run_dir / "teacher").glob("ckpt-*"))
    from noisy_student.run.directory import record_evaluation

    record_evaluation(str(run_dir), 0, "corrupted", {"mCE": 0.5})  # of the old teacher
    given = [*first, f"--teacher_checkpoint={teacher_weights}"]
    assert cli(*given)[0] == 2
    with caplog.at_level(logging.WARNING):
        assert cli(*given, "--redo_changed_stages")[0] == 0
    assert "Redoing stages teacher" in caplog.text
    assert not (run_dir / "teacher").exists()  # the old teacher's checkpoints are gone
    redone = json.loads((run_dir / "manifest.json").read_text())
    assert redone["stages"]["teacher"]["given"] == teacher_weights
    assert redone["settings"]["teacher"]["teacher_checkpoint"] == teacher_weights
    assert "teacher/eval" not in redone.get("evaluations", {})  # forgotten with its model


def test_eval_reads_a_damaged_file_up_to_the_damage_and_reports_it(
        tmp_path, tf, teacher_weights, labeled):
    _, damaged = labeled
    run_dir = tmp_path / "run"
    code, table, stderr = cli(*tiny_flags(run_dir, "--mode=eval", "--iteration=0",
                                          f"--teacher_checkpoint={teacher_weights}",
                                          f"--eval_data={damaged}"))
    assert code == 0, stderr
    result = json.loads((run_dir / "manifest.json").read_text())["stages"]["teacher/eval"]
    assert result["num_examples"] == 30  # the whole records before the damage
    assert result["data_damaged_files"] == {damaged: os.path.getsize(damaged) - sum(
        len(r) + 16 for r in records_of(tf, damaged))}
    assert "damaged: damaged-00000-of-00001" in table


# ----------------------------------------------------------- 3: one writer per run directory

HOLD_LOCK = """
import sys, time
from noisy_student.run.lock import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_second_command_exits_at_once_and_a_stale_lock_is_taken_over(
        tmp_path, teacher_weights, caplog):
    run_dir = tmp_path / "run"
    args = tiny_flags(run_dir, "--mode=teacher", f"--teacher_checkpoint={teacher_weights}")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, stderr = cli(*args)
        assert code == 2
        [line] = error_lines(stderr)
        assert f"{run_dir} is in use by pid {holder.pid} on " in line
        assert "another --run_dir" in line
        assert not (run_dir / "manifest.json").exists()  # exited before any work
        # Another worker role has its own lock.
        code, _, stderr = cli(*args, "--worker_index=1", "--num_workers=2")
        assert code == 0, stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with caplog.at_level(logging.WARNING):
        code, _, stderr = cli(*args)
    assert code == 0, stderr
    assert f"Taking over the stale lock of pid {holder.pid}" in caplog.text
    assert (run_dir / ".lock").read_text() == ""  # released on exit


UPDATE_MANIFEST = """
import os, sys, time
from noisy_student.run.directory import update_manifest
from noisy_student.atomic_io import read_json
run_dir, name = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(os.path.join(run_dir, "go")):
    time.sleep(0.005)
for i in range(300):
    if name == "reader":
        read_json(os.path.join(run_dir, "manifest.json"))  # raises on a torn read
    else:
        key = f"{name}{i}"
        update_manifest(run_dir, lambda m: m.setdefault("evaluations", {}).update({key: i}))
"""


def test_commands_updating_one_manifest_at_once_lose_nothing(tmp_path):
    """A loop recording its stages and noisy-student-eval recording results in the same run
    directory: every update survives, and a reader never sees a half-replaced file."""
    workers = [subprocess.Popen([sys.executable, "-c", UPDATE_MANIFEST, str(tmp_path), name],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for name in ("loop", "eval", "reader")]
    for worker in workers:
        assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
    (tmp_path / "go").touch()
    for worker in workers:
        assert worker.wait() == 0, worker.stderr.read()[-2000:]
    recorded = json.loads((tmp_path / "manifest.json").read_text())["evaluations"]
    assert sorted(recorded) == sorted(f"{name}{i}" for name in ("loop", "eval")
                                      for i in range(300))


# --------------------------------------------------------------------- 6: clean resumption


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temps_of_killed_writers_are_removed_on_rerun(tmp_path, teacher_weights):
    from noisy_student.atomic_io import _host, temp_path

    run_dir = tmp_path / "run"
    (run_dir / "iter1" / "filtered").mkdir(parents=True)
    (run_dir / "teacher").mkdir()
    pid = dead_pid()
    stale = [run_dir / "iter1" / "filtered" / f".train-00000-of-00002.tmp-{_host()}-{pid}",
             run_dir / f".export.tmp-{_host()}-{pid}",
             run_dir / "teacher" / f".model.keras.tmp-{_host()}-{pid}.keras"]
    stale[0].write_bytes(b"")
    (stale[1] / "variables").mkdir(parents=True)
    stale[2].write_bytes(b"half a model")
    live = temp_path(str(run_dir / "iter1" / "filtered" / "stats.json"))
    with open(live, "w") as f:
        f.write("{}")  # this process's: still being written
    other_host = run_dir / f".x.tmp-elsewhere-{pid}"
    other_host.write_text("")
    code, _, stderr = cli(*tiny_flags(run_dir, "--mode=teacher",
                                   f"--teacher_checkpoint={teacher_weights}"))
    assert code == 0, stderr
    assert [p for p in stale if p.exists()] == []
    assert os.path.exists(live) and other_host.exists()


# Runs the `noisy-student` CLI with one pause added: when the run reaches the chosen point of a
# stage (argv[1]), it creates the marker file (argv[2]) and blocks until it is killed. No timing:
# the test waits for the marker, so the kill always lands inside the stage.
PAUSE_INSIDE = """
import sys, time
where, marker = sys.argv.pop(1), sys.argv.pop(1)

def pause(*args, **kwargs):
    open(marker, "w").close()
    while True:
        time.sleep(60)

if where == "filter":  # every record written to the shard's temp files, none renamed yet
    from noisy_student.pseudo_labels import filter_shards
    filter_shards._scan = pause
else:  # export: the SavedModel written into its temp directory, not yet renamed
    import tensorflow as tf
    save = tf.saved_model.save
    tf.saved_model.save = lambda *args, **kwargs: (save(*args, **kwargs), pause())
from noisy_student.cli import main
sys.argv[0] = "noisy-student"
main.run()
"""


def kill_inside(stage: str, args: list[str], folder) -> int:
    """Starts the CLI with `args`, SIGKILLs it inside `stage` (filter or export); returns its
    pid."""
    marker, log_path = folder / f"paused-{stage}", folder / f"{stage}.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-c", PAUSE_INSIDE, stage, str(marker),
                                    *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            deadline = time.time() + 900  # a guard against a hang only
            while not marker.exists():
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.time() < deadline, f"never reached the {stage} stage"
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL
    return process.pid


def test_kill_9_inside_filter_and_inside_export_then_rerun_leaves_no_temps(
        tmp_path, tf, keras, teacher_weights, caplog):
    """The real CLI killed with SIGKILL while the filter's shards are open under temp names,
    and while the export's temp SavedModel is written but not renamed: each rerun finishes the
    stage and nothing of the killed writers is left."""
    from noisy_student.atomic_io import _host
    from noisy_student.pipeline.loop import Run, RunConfig
    from noisy_student.pipeline.stages import model_fn
    from noisy_student.training import save_model

    unlabeled = tmp_path / "unlabeled-00000-of-00001"
    with tf.io.TFRecordWriter(str(unlabeled)) as writer:
        for record in records_of(tf, os.path.join(SAMPLE, "unlabeled-00000-of-00008"))[:64]:
            writer.write(record)
    run_dir = tmp_path / "run"
    args = tiny_flags(run_dir, f"--teacher_checkpoint={teacher_weights}",
                      f"--unlabel_data={unlabeled}", "--filter_output_shards=1",
                      "--min_threshold=0")  # the untrained teacher is not confident

    def stages():
        return set(json.loads((run_dir / "manifest.json").read_text())["stages"])

    assert cli(*args, "--mode=label")[0] == 0
    filter_pid = kill_inside("filter", [*args, "--mode=filter"], tmp_path)
    filtered = run_dir / "iter1" / "filtered"
    assert [p.name for p in run_dir.rglob("*.tmp-*")] == [
        f".train-00000-of-00001.tmp-{_host()}-{filter_pid}"]
    assert "iter1/filter" not in stages()
    with caplog.at_level(logging.WARNING):
        code, _, stderr = cli(*args, "--mode=filter")
    assert code == 0, stderr
    assert f"Taking over the stale lock of pid {filter_pid}" in caplog.text
    assert "Removed 1 temporary file(s) of killed writers" in caplog.text
    assert "iter1/filter" in stages() and (filtered / "train-00000-of-00001").exists()
    assert [p.name for p in run_dir.rglob("*.tmp-*")] == []

    # Export: the tiny teacher's weights stand in for the student of iteration 1 (training one
    # would only cost time).
    scratch = Run(RunConfig(run_dir=str(tmp_path / "scratch"), num_classes=10,
                            small_images=True, width_coefficient=0.25, depth_coefficient=0.25))
    student = model_fn(scratch.context, 1, for_training=False)()
    student.load_weights(teacher_weights)
    save_model(student, str(run_dir / "iter1" / "student" / "model.keras"))
    export_pid = kill_inside("export", [*args, "--mode=export"], tmp_path)
    staging = run_dir / f".export.tmp-{_host()}-{export_pid}"
    assert [p.name for p in run_dir.rglob("*.tmp-*")] == [staging.name]
    assert (staging / "saved_model.pb").exists() and "export" not in stages()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code, _, stderr = cli(*args, "--mode=export")
    assert code == 0, stderr
    assert "Removed 1 temporary file(s) of killed writers" in caplog.text
    assert "export" in stages() and (run_dir / "export" / "saved_model.pb").exists()
    assert [p.name for p in run_dir.rglob("*.tmp-*")] == []


# ---------------------------------------- 1, 3, 6, 7: kill -9 of one of two labeling workers


def test_killed_labeling_worker_and_damaged_shards_rerun_gives_one_record_per_image(
        tmp_path, tf, teacher_weights, unlabeled, caplog):
    from noisy_student.data.records import parse_pseudo_labeled

    pattern, readable = unlabeled
    run_dir = tmp_path / "run"
    labels = run_dir / "iter1" / "labels"

    def worker(index: int, *extra: str) -> list[str]:
        return tiny_flags(run_dir, "--mode=label", f"--unlabel_data={pattern}",
                          f"--teacher_checkpoint={teacher_weights}", f"--worker_index={index}",
                          "--num_workers=2", *extra)

    command = [sys.executable, "-m", "noisy_student.cli.main"]
    first = subprocess.Popen(command + worker(0), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command + worker(1, "--wait_timeout=5"), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = labels / "info" / f"pseudo-00000-of-{NUM_UNLABELED_SHARDS:05d}.json"
    deadline = time.time() + 300
    while not done.exists():  # worker 0 has finished its first shard and works on the next
        assert first.poll() is None, first.stderr.read()[-3000:]
        assert time.time() < deadline, "worker 0 labeled nothing"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    unfinished = labels / "info" / f"pseudo-00002-of-{NUM_UNLABELED_SHARDS:05d}.json"
    assert not unfinished.exists(), "worker 0 finished before it was killed; use larger shards"
    # Worker 1 labels its shards (past the damaged one), waits for worker 0's and gives up.
    assert second.wait(timeout=300) == 2
    assert "Rerun the same command to resume" in second.stderr.read()

    with caplog.at_level(logging.WARNING):
        for index in (0, 1):
            code, _, stderr = cli(*worker(index))
            assert code == 0, stderr
    assert "Taking over the stale lock" in caplog.text

    written = collections.Counter()
    for path in sorted(labels.glob("pseudo-*")):
        for record in records_of(tf, str(path)):
            written[parse_pseudo_labeled(record, 10)["image"].numpy()] += 1
    assert written == collections.Counter(readable)
    assert [p.name for p in run_dir.rglob("*.tmp-*")] == []

    result = json.loads((run_dir / "manifest.json").read_text())["stages"]["iter1/label"]
    assert result["num_labeled"] == len(readable)  # both workers, both invocations
    assert result["data_skipped"] == 1
    assert list(result["data_damaged_files"]) == [
        f"unlabeled-{CORRUPT_SHARD:05d}-of-{NUM_UNLABELED_SHARDS:05d}"]
    assert result["num_finished_shards"] == NUM_UNLABELED_SHARDS


# ------------------------------------------------------------ 4: hardened serving signatures


@pytest.fixture(scope="module")
def served(tmp_path_factory, tf, keras):
    """The tiny model exported and loaded again, with its Keras original."""
    from tiny_models import make_model_fn

    from noisy_student.export.saved_model import export_saved_model

    model = make_model_fn(keras)()
    path = export_saved_model(model, str(tmp_path_factory.mktemp("export") / "export"),
                              image_size=32, small_images=True)
    return tf.saved_model.load(path), model


@pytest.mark.parametrize("shape, dtype, expected", [
    ((32, 32, 3), "float32", "got shape [32 32 3]"),
    ((1, 1, 32, 32, 3), "float32", "got shape [1 1 32 32 3]"),
    ((1, 64, 64, 3), "float32", "got shape [1 64 64 3]"),
    ((2, 8, 8, 3), "float32", "got shape [2 8 8 3]"),
    ((1, 32, 32, 1), "float32", "got shape [1 32 32 1]"),
    ((1, 32, 32, 3), "nan", "NaN or infinite pixels"),
    ((1, 32, 32, 3), "inf", "NaN or infinite pixels"),
    ((1, 32, 32, 3), "1e30", "pixel values in [-1, 256) (0..255 images"),
    ((1, 32, 32, 3), "-2", "pixel values in [-1, 256) (0..255 images"),
    ((1, 32, 32, 3), "float64", "expected to be a float tensor but is a double"),
    ((1, 32, 32, 3), "uint8", "expected to be a float tensor but is a uint8"),
])
def test_serving_default_rejects_bad_images_with_a_clear_error(served, tf, shape, dtype,
                                                              expected):
    import numpy as np

    loaded, _ = served
    special = {"nan": np.nan, "inf": np.inf, "1e30": 1e30, "-2": -2.0}  # float32 values
    images = np.full(shape, special.get(dtype, 100), "float32" if dtype in special else dtype)
    images.flat[0] = 100 if dtype in special else images.flat[0]  # one good pixel
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["serving_default"](images=tf.constant(images))
    assert expected in str(error.value)
    if "shape" in expected:
        assert "[batch, 32, 32, 3]" in str(error.value)


def test_serving_default_accepts_the_edges_of_the_pixel_range(served, tf):
    """-1 and 255.9 (rounding around 0..255) are served like predict."""
    import numpy as np

    loaded, model = served
    images = np.full((2, 32, 32, 3), 128, np.float32)
    images[0, 0, 0], images[1, 0, 0] = -1.0, 255.9
    out = loaded.signatures["serving_default"](images=tf.constant(images))
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)


def test_serving_bytes_names_bad_images_and_the_status_signature_classifies_the_rest(
        served, tf):
    import numpy as np
    from data_helpers import sample_examples

    from noisy_student.data.preprocessing import preprocess_for_eval

    loaded, model = served
    good = [e["image"] for e in sample_examples("validation", 3)]
    batch = [good[0], b"not an image", good[1], good[2][:40]]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image_bytes\[1 3\] of 4 cannot be decoded"):
        loaded.signatures["serving_bytes"](image_bytes=tf.constant(batch))

    out = loaded.signatures["serving_bytes_status"](image_bytes=tf.constant(batch))
    np.testing.assert_array_equal(out["valid"].numpy(), [True, False, True, False])
    images = tf.stack([preprocess_for_eval(g, 32, small_images=True) for g in good[:2]])
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities[[0, 2]], expected, atol=1e-5)
    assert (probabilities[[1, 3]] == 0).all()
    np.testing.assert_array_equal(out["classes"].numpy()[[1, 3]], [-1, -1])
    np.testing.assert_array_equal(out["classes"].numpy()[[0, 2]], expected.argmax(-1))
    clean = loaded.signatures["serving_bytes"](image_bytes=tf.constant(good[:2]))
    np.testing.assert_allclose(clean["probabilities"].numpy(), expected, atol=1e-5)
    empty = loaded.signatures["serving_bytes"](image_bytes=tf.constant([], tf.string))
    assert empty["probabilities"].shape == (0, 10) and empty["classes"].shape == (0,)


def test_serving_images_status_marks_out_of_range_images_and_classifies_the_rest(served, tf):
    """The float counterpart of serving_bytes_status: NaN, infinite and out-of-range images
    get valid False, class -1 and zero probabilities; the others are served like predict; a
    malformed batch is still an error."""
    import numpy as np

    loaded, model = served
    signature = loaded.signatures["serving_images_status"]
    images = np.random.default_rng(3).uniform(0, 255, (6, 32, 32, 3)).astype(np.float32)
    images[1, 4, 4, 0], images[3, 0, 0, 2] = np.nan, 1e30
    images[4, 31, 31, 1], images[5, 0, 1, 0] = -2.0, -np.inf
    out = signature(images=tf.constant(images))
    np.testing.assert_array_equal(out["valid"].numpy(), [True, False, True, False, False, False])
    expected = tf.nn.softmax(model(images[[0, 2]], training=False)).numpy()
    probabilities = out["probabilities"].numpy()
    np.testing.assert_allclose(probabilities[[0, 2]], expected, atol=1e-5)
    assert (probabilities[[1, 3, 4, 5]] == 0).all()
    np.testing.assert_array_equal(out["classes"].numpy(),
                                  [expected[0].argmax(), -1, expected[1].argmax(), -1, -1, -1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"got shape \[6 32 32 1\]"):
        signature(images=tf.constant(images[..., :1]))
    empty = signature(images=tf.zeros([0, 32, 32, 3]))
    assert empty["probabilities"].shape == (0, 10) and empty["valid"].shape == (0,)


def test_saved_model_signatures_and_outputs_are_the_artifact_table(served):
    """The SavedModel has exactly the signatures of noisy_student.export.artifacts, each with the
    outputs that table names."""
    import re

    from noisy_student.export import artifacts

    loaded, _ = served
    assert sorted(loaded.signatures) == sorted(artifacts.SIGNATURES)
    for entry in artifacts.ARTIFACTS:
        if entry.signature:
            named = set(re.findall(r"`(\w+)`", entry.outputs))
            assert set(loaded.signatures[entry.signature].structured_outputs) == named, entry


# ---------------------------------------------- #32: every usage error is one line and status 2

# Each entry point: (module, function, a flag and a value it rejects, then command lines that
# fail a check after parsing or an expected failure after validation, each with the text its
# one error line must hold: the flag, or the missing file).
ENTRY_POINTS = {
    "noisy-student": ("noisy_student.cli.main", "run", "--train_epochs=fourty",
                      [([], "--run_dir")]),
    "noisy-student-demo": ("noisy_student.cli.demo", "run", "--train_epochs=fourty",
                           [(["--train_epochs=-1"], "--train_epochs")]),
    "noisy-student-eval": ("noisy_student.cli.evaluate", "run_cli", "--num_classes=ten",
                           [([], "--model"), (["--model=m", "--batch_size=0"], "--batch_size"),
                            (["--model=m", "--severities=0"], "--severities")]),
    "noisy-student-build-tfrecords": ("noisy_student.cli.build_tfrecords", "run",
                                      "--num_shards=ten",
                                      [([], "--input_dir"),
                                       (["--input_dir=i", "--output_dir=o", "--num_shards=-3"],
                                        "--num_shards"),
                                       (["--input_dir=i", "--output_dir=o", "--num_threads=0"],
                                        "--num_threads"),
                                       (["--input_dir=/no/such", "--output_dir=o"],
                                        "'/no/such' does not exist")]),
    "noisy-student-cam": ("noisy_student.cli.cam", "run", "--num_images=ten",
                          [([], "--models"),
                           (["--models=m", "--images=i", "--num_images=0"], "--num_images")]),
    "noisy-student-export-model": ("noisy_student.cli.export_model", "run",
                                   "--max_examples=ten",
                                   [([], "--model"),
                                    (["--model=m", "--representative_examples=0"],
                                     "--representative_examples"),
                                    (["--model=m", "--int8_percentile=101"],
                                     "--int8_percentile")]),
    "noisy-student-make-corrupted": ("noisy_student.cli.make_corrupted", "run", "--seed=ten",
                                     [(["--input=x", "--output_dir=y", "--severities=one"],
                                       "--severities"),
                                      (["--input=x", "--output_dir=y", "--severities=7"],
                                       "--severities"),
                                      (["--input=x", "--output_dir=y", "--corruptions=foggy"],
                                       "--corruptions: unknown foggy"),
                                      (["--input=x", "--output_dir=y", "--images_per_shard=0"],
                                       "--images_per_shard"),
                                      (["--input=/no/such", "--output_dir=y",
                                        "--corruptions=fog"], "/no/such: no TFRecord files")]),
    "noisy-student-record-sizes": ("noisy_student.cli.measure_record_sizes", "run",
                                   "--num_classes=ten",
                                   [(["--num_classes=ten"], "--num_classes"),
                                    (["--num_classes=0"], "--num_classes"),
                                    (["--storages=float8"], "--storages")]),
    "noisy-student-scaling-search": ("noisy_student.cli.scaling_search", "run",
                                     "--tolerance=small", [([], "--output_dir")]),
    "efficientnet-convert-weights": ("noisy_student.cli.convert_weights", "run",
                                     "--use_ema=maybe",
                                     [([], "--source"),
                                      (["--source=/no/such", "--output=o.keras"],
                                       "No TF checkpoint at /no/such")]),
    "efficientnet-count-flops": ("noisy_student.cli.count_flops", "run", "--resolution=big",
                                 [([], "--model"), (["--model=b99"], "--model: Unknown"),
                                  (["--model=b0", "--resolution=-1"], "--resolution"),
                                  (["--model=b0", "--classes=0"], "--classes")]),
    "build_demo_data": ("noisy_student.cli.build_demo_data", "run", "--jpeg_quality=high",
                        [(["--jpeg_quality=101"], "--jpeg_quality"),
                         (["--source=/no/such"], "/no/such/cifar10_train_0.npz not found")]),
}

# Runs an entry point once per command line in one process (flags are defined once per
# process, so later calls skip the tool's define_flags); prints [[status, stderr, whether
# TensorFlow is loaded], ...].
DRIVER = """
import contextlib, io, json, sys
from absl import flags
import {module} as tool
results = []
for argv in json.loads(sys.argv[1]):
    sys.argv, stderr = argv, io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            tool.{function}()
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    results.append([code, stderr.getvalue(), "tensorflow" in sys.modules])
    flags.FLAGS.unparse_flags()
    tool.define_flags = lambda: None
print(json.dumps(results))
"""


@pytest.mark.parametrize("program", sorted(ENTRY_POINTS))
def test_every_usage_error_is_one_line_naming_the_flag_and_status_2(program, tmp_path):
    """An unknown flag, a bad value in a flagfile (named by file and line), missing, out-of-range
    or unknown flag values found after parsing, and an expected failure after validation:
    status 2 and one line `PROGRAM: error: ...` naming the flag (or the file), for each command
    line (absl's own way: status 1 and no flagfile line; a failure: a traceback). Flag errors
    come before TensorFlow is imported (no start-up logs, no wait)."""
    module, function, bad_value, after_parse = ENTRY_POINTS[program]
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text(f"# a comment\n\n{bad_value}\n")
    cases = [([program, "--no_such_flag=1"], "unknown flag --no_such_flag=1"),
             ([program, f"--flagfile={flagfile}"],
              bad_value.partition("=")[0], f"(flagfile {flagfile}, line 3)")]
    cases += [([program, *args], named) for args, named in after_parse]
    code = DRIVER.format(module=module, function=function)
    run = subprocess.run([sys.executable, "-c", code, json.dumps([c[0] for c in cases])],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.splitlines()[-1])
    for (argv, *expected), (status, stderr, _) in zip(cases, results, strict=True):
        lines = error_lines(stderr)
        assert (status, len(lines)) == (2, 1), (argv, status, stderr[-2000:])
        assert lines[0].startswith(f"{program}: error: "), lines
        assert all(text in lines[0] for text in expected), (expected, lines[0])
    assert not any(loaded for _, _, loaded in results[:2]), program


def test_a_bad_value_found_after_parsing_names_its_flagfile_line(tmp_path):
    """A value that parses but fails validation (--train_epochs=-3) is traced to the flagfile
    line it came from; the same flag on the command line has no location."""
    from noisy_student.cli import main, runner

    flagfile = tmp_path / "run.cfg"
    flagfile.write_text("# recipe\n--train_epochs=-3\n")
    argv = ["noisy-student", f"--flagfile={flagfile}", *tiny_flags(tmp_path / "run"),
            f"--unlabel_data={os.path.join(SAMPLE, 'unlabeled-00000-of-00008')}"]
    stderr = io.StringIO()
    with flagsaver.flagsaver(), contextlib.redirect_stderr(stderr):
        flags.FLAGS.unparse_flags()
        runner.parse_flags(argv)
        with pytest.raises(SystemExit) as exit_:
            main.validate_or_exit("noisy-student", ["noisy-student"])
    assert exit_.value.code == 2
    assert error_lines(stderr.getvalue()) == [
        f"noisy-student: error: --train_epochs must be > 0, got -3.0. (flagfile {flagfile}, "
        "line 2)"]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------- #32: causes, not symptoms


def test_no_readable_unlabeled_image_names_the_files_and_their_damage(tmp_path,
                                                                      teacher_weights):
    """Every unlabeled record damaged: the label stage stops with the files and what reading
    them found, instead of recording 0 images and the filter blaming the teacher."""
    import numpy as np

    folder = tmp_path / "unlabeled"
    folder.mkdir()
    sizes = {"unlabeled-00000-of-00002": 3000, "unlabeled-00001-of-00002": 5000}
    for name, size in sizes.items():
        (folder / name).write_bytes(np.random.default_rng(size).bytes(size))
    code, _, stderr = cli(*tiny_flags(tmp_path / "run", "--mode=label", "--iteration=1",
                                   f"--teacher_checkpoint={teacher_weights}",
                                   f"--unlabel_data={folder / 'unlabeled-*'}"))
    assert code == 2, stderr[-3000:]
    [line] = error_lines(stderr)
    assert "No unlabeled image could be read" in line
    for name, size in sizes.items():
        assert f"{name} (0 readable records, damaged: {size} bytes unread)" in line, line
    assert str(tmp_path / "run" / "iter1" / "labels") in line and "min_threshold" not in line


def test_class_count_mismatch_is_one_line_before_any_weight(tmp_path, teacher_weights):
    """A 10-class checkpoint with --num_classes=100: both numbers in one line, no Keras shape
    error with the weight matrix, no 'freshly-initialized' warning."""
    eval_data = os.path.join(SAMPLE, "validation-00000-of-00002")
    args = [a for a in tiny_flags(tmp_path / "run") if a != "--num_classes=10"]
    code, stdout, stderr = cli(*args, "--num_classes=100", "--mode=eval", "--iteration=0",
                               f"--teacher_checkpoint={teacher_weights}",
                               f"--eval_data={eval_data}")
    assert code == 2
    assert error_lines(stderr) == [
        f"noisy-student: error: {teacher_weights} holds a model with 10 classes, --num_classes "
        "says 100: pass --num_classes=10, or a 100-class model. (--traceback shows the stack)"]
    assert "value=" not in stderr + stdout and "freshly" not in stderr + stdout


def test_saved_classes_reads_every_model_format(tmp_path, tf, keras):
    """.keras, .weights.h5 and a training checkpoint (model and EMA shadows) all tell their
    class count without being loaded."""
    from efficientnet_tf import create_model
    from noisy_student.training.checkpoints import check_classes, saved_classes
    from noisy_student.training.ema import ExponentialMovingAverage

    model = create_model("b0", classes=7, small_images=True, width_coefficient=0.25,
                         depth_coefficient=0.25, input_shape=(32, 32, 3))
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    prefix = tf.train.Checkpoint(model=model, ema=ExponentialMovingAverage(model).checkpointable
                                 ).write(str(tmp_path / "ckpt-1"))
    paths = [str(tmp_path / "m.keras"), str(tmp_path / "m.weights.h5"), prefix]
    assert [saved_classes(path) for path in paths] == [7, 7, 7]
    check_classes(prefix, 7)
    with pytest.raises(ValueError, match="holds a model with 7 classes, --num_classes says 8"):
        check_classes(prefix, 8)


def test_classes_without_labeled_images_warn_or_stop_with_strict_data(tmp_path, caplog):
    """--num_classes=11 on 10-class labels: a warning naming class 10 when the teacher trains;
    with --strict_data the teacher stage stops before training, naming it."""
    from noisy_student.data.pipelines import check_class_coverage

    labeled = os.path.join(SAMPLE, "train-00000-of-00004")
    with caplog.at_level(logging.WARNING):
        assert check_class_coverage(labeled, 10, 1) == []
        assert not caplog.records
        assert check_class_coverage(labeled, 12, 1, class_names=[str(i) for i in range(12)]
                                    ) == [10, 11]
    [record] = caplog.records
    assert record.getMessage().startswith(
        f"2 of the 12 classes have no labeled image in {labeled}: 10 (10), 11 (11).")
    args = [a for a in tiny_flags(tmp_path / "run") if a != "--num_classes=10"]
    code, _, stderr = cli(*args, "--num_classes=11", "--mode=teacher", "--strict_data")
    assert code == 2
    assert error_lines(stderr) == [
        f"noisy-student: error: 1 of the 11 classes have no labeled image in {labeled}: 10. "
        "Check --num_classes and --label_offset=1 (strict data checking). (--traceback shows "
        "the stack)"]
    assert not os.path.exists(tmp_path / "run" / "teacher" / "checkpoint")
    # A given 11-class teacher: the students still train on these labels, so the same stop.
    teacher = save_teacher(str(tmp_path / "t11" / "teacher.weights.h5"), num_classes=11)
    code, _, given_stderr = cli(*args, "--num_classes=11", "--mode=teacher", "--strict_data",
                                f"--teacher_checkpoint={teacher}", f"--eval_data={labeled}",
                                f"--run_dir={tmp_path / 'given'}")
    assert code == 2 and error_lines(given_stderr) == error_lines(stderr)


# ------------------------------------------------------------- #32: damaged checkpoints


def test_damaged_checkpoints_fall_back_to_the_newest_readable_or_stop_naming_them(
        tmp_path, tf, keras, caplog):
    """The newest checkpoint's data file truncated (disk damage, a partial copy): training
    resumes from the newest readable one with a warning naming the file and the steps redone;
    with every checkpoint damaged, one error names them all and the fix."""
    import numpy as np
    from tiny_models import make_model_fn

    from noisy_student import training

    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensors((
        rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32"),
        np.eye(10, dtype="float32")[rng.integers(0, 10, 4)])).repeat()

    def train(steps):
        config = training.TrainConfig(batch_size=4, num_train_examples=40, train_steps=steps,
                                      warmup_epochs=0, checkpoint_every=2, quiet=True)
        return training.train(make_model_fn(keras), config, data, str(tmp_path))

    def truncate(step):
        path = tmp_path / f"ckpt-{step}.data-00000-of-00001"
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
        return path.name

    train(6)
    damaged = truncate(6)
    with caplog.at_level(logging.WARNING):
        train(8)
    [warning] = [r.getMessage() for r in caplog.records if "Cannot read" in r.getMessage()]
    assert damaged in warning and "Read less bytes than requested" in warning
    assert warning.endswith(f"resuming from {tmp_path / 'ckpt-4'} instead (2 training steps are "
                            "redone).")
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest.endswith("ckpt-8")
    assert int(tf.train.load_checkpoint(latest).get_tensor(
        "step/.ATTRIBUTES/VARIABLE_VALUE")) == 8

    steps = sorted(int(p.name.split("-")[1].split(".")[0]) for p in tmp_path.glob("ckpt-*.data*"))
    assert steps[-2:] == [6, 8]
    names = [truncate(step) for step in steps]  # ckpt-6 was written again by the resumed run
    with pytest.raises(ValueError, match=f"No checkpoint in {tmp_path} can be read") as error:
        train(10)
    assert all(name in str(error.value) for name in names)
    assert "delete them (and the 'checkpoint' file)" in str(error.value)


# ---------------------------------------------------- #32: robustness evaluation of subsets


def test_corrupted_eval_scores_the_subset_the_generator_wrote(tmp_path, tf):
    """make-corrupted --corruptions=fog --severities=1,3, then the evaluator: the errors at
    severities 1 and 3, CE against the baseline's errors there, and the mCE marked partial
    (it stopped at the missing fog/2 before)."""
    pytest.importorskip("imagecorruptions")
    from test_robustness import BrightnessModel

    from noisy_student.evaluation import robustness
    from noisy_student.evaluation.corruptions import make_corrupted

    root = tmp_path / "corrupted"
    make_corrupted(os.path.join(SAMPLE, "validation-00000-of-00002"), str(root),
                   corruptions=["fog"], severities=[1, 3], max_images=8)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"errors": {"fog": [0.5, 0.6, 0.7, 0.8, 0.9]}}))
    model = BrightnessModel(centers=[float(c) for c in range(60, 160, 10)])  # 10 classes
    options = dict(baseline_path=str(baseline), image_size=32, num_classes=10, batch_size=4,
                   small_images=True, label_offset=1)
    got = robustness.evaluate_corrupted(model, str(root), output_dir=str(tmp_path / "eval"),
                                        **options)
    assert got["severities"] == [1, 3] and len(got["errors"]["fog"]) == 2
    assert got["CE"]["fog"] == pytest.approx(sum(got["errors"]["fog"]) / (0.5 + 0.7))
    assert got["mCE"] == got["CE"]["fog"]
    assert got["partial"].startswith("1 of the 15 ImageNet-C corruptions (without ")
    assert got["partial"].endswith("; severities 1, 3 of 1-5")
    assert got["table"].splitlines()[0].split() == ["corruption", "s1", "s3", "CE"]
    assert got["table"].splitlines()[-1] == f"partial mCE: {got['partial']}"
    saved = json.loads((tmp_path / "eval" / "corrupted.json").read_text())
    assert saved["partial"] == got["partial"]
    one = robustness.evaluate_corrupted(model, str(root), severities=[3], **options)
    assert one["errors"]["fog"] == [got["errors"]["fog"][1]]
    with pytest.raises(FileNotFoundError, match="fog/2: missing"):
        robustness.evaluate_corrupted(model, str(root), severities=[1, 2], **options)
