"""Fault tolerance: a training process killed with SIGKILL resumes from its last checkpoint and
ends at the same final step, also when it was killed while TensorFlow wrote a checkpoint (what
that save left is removed); a NaN/Inf stops training with a clear error and leaves the last good
checkpoint intact."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tiny_models import make_model_fn

HELPER = os.path.join(os.path.dirname(__file__), "helpers", "train_tiny.py")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def training(tf, keras):
    import noisy_student.training as training

    return training


def checkpoint_step(tf, path):
    return int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def test_killed_run_resumes_from_last_checkpoint(tf, tmp_path):
    model_dir, out = str(tmp_path / "run"), str(tmp_path / "out")
    command = [
        sys.executable,
        HELPER,
        "--model_dir",
        model_dir,
        "--out",
        out,
        "--steps",
        "12",
        "--checkpoint_every",
        "2",
        "--seconds_per_batch",
        "0.25",
    ]
    env = dict(os.environ, PYTHONPATH=REPO)
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while tf.train.latest_checkpoint(model_dir) is None:
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    killed_at = checkpoint_step(tf, tf.train.latest_checkpoint(model_dir))
    assert 2 <= killed_at < 12

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    with open(out + ".json") as handle:
        summary = json.load(handle)
    assert summary["start_step"] >= killed_at > 0  # resumed, not restarted from 0
    assert summary["step"] == 12
    final = tf.train.latest_checkpoint(model_dir)
    assert final.endswith("ckpt-12") and checkpoint_step(tf, final) == 12


# Runs the helper with one pause added: TensorFlow's first checkpoint save blocks (after the
# marker file, argv[1], is created) where its shards are written to ckpt-N_temp/ but not yet
# merged, so the test can kill the process inside the save.
PAUSE_IN_SAVE = """
import runpy, sys, time
from tensorflow.python.ops import gen_io_ops
marker, helper = sys.argv.pop(1), sys.argv[1]

def pause(*args, **kwargs):
    open(marker, "w").close()
    while True:
        time.sleep(60)

gen_io_ops.merge_v2_checkpoints = pause
sys.argv.pop(0)
runpy.run_path(helper, run_name="__main__")
"""


def test_kill_9_inside_a_checkpoint_save_leaves_nothing_after_the_rerun(tf, tmp_path):
    model_dir, out, marker = tmp_path / "run", str(tmp_path / "out"), tmp_path / "saving"
    args = [HELPER, "--model_dir", str(model_dir), "--out", out, "--steps", "4",
            "--checkpoint_every", "2"]
    env = dict(os.environ, PYTHONPATH=REPO)
    first = subprocess.Popen([sys.executable, "-c", PAUSE_IN_SAVE, str(marker), *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600  # a guard against a hang only
        while not marker.exists():
            assert first.poll() is None, first.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint save started"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    assert [p.name for p in model_dir.glob("*_temp")] == ["ckpt-2_temp"]
    assert list((model_dir / "ckpt-2_temp").iterdir())  # the shards TensorFlow had written
    assert tf.train.latest_checkpoint(str(model_dir)) is None
    # Not TensorFlow's names: left alone.
    (model_dir / "notes_temp").mkdir()
    (model_dir / "checkpoint.tmp-mine").write_text("")

    second = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    removed = [line for line in second.stderr.splitlines() if "interrupted checkpoint" in line]
    assert len(removed) == 1
    assert removed[0].endswith(f"Removed what interrupted checkpoint saves left in {model_dir}: "
                               "ckpt-2_temp")
    with open(out + ".json") as handle:
        assert json.load(handle)["step"] == 4
    assert sorted(p.name for p in model_dir.glob("*temp*")) == ["notes_temp"]
    assert (model_dir / "checkpoint.tmp-mine").exists()


def test_only_tensorflows_temp_names_are_removed(tf, training, tmp_path, caplog):
    from noisy_student.training.checkpoints import Checkpointer

    leftovers = ["checkpoint.tmp" + "0123456789abcdef" * 2, "ckpt-7_temp"]
    kept = ["ckpt-7_temporary", "ckpt-7.index", "checkpoint.tmp-1", "ckpt_temp", "ckpt-x_temp",
            ".worker_scratch_1"]
    (tmp_path / leftovers[1]).mkdir()
    (tmp_path / leftovers[1] / "part-00000-of-00001.index").write_bytes(b"x")
    for name in [leftovers[0], *kept]:
        (tmp_path / name).write_text("")
    chief = Checkpointer(str(tmp_path), tf.distribute.get_strategy(), step=tf.Variable(0))
    with caplog.at_level(logging.WARNING):
        assert chief.remove_interrupted_saves() == [str(tmp_path / n) for n in leftovers]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    assert caplog.messages == [
        f"Removed what interrupted checkpoint saves left in {tmp_path}: {', '.join(leftovers)}"]
    assert chief.remove_interrupted_saves() == []


def nan_at_step(tf, images, labels, bad_step):
    """Batches in order; the batch of `bad_step` (1-based) has a NaN pixel."""
    batches = np.repeat(images[None], 12, axis=0)
    batches[bad_step - 1, 0, 0, 0, 0] = np.nan
    return tf.data.Dataset.from_tensor_slices((batches, np.repeat(labels[None], 12, axis=0)))


@pytest.mark.parametrize("fault", ["nan_image", "infinite_learning_rate"])
def test_non_finite_stops_and_keeps_last_good_checkpoint(training, tf, keras, tmp_path, fault):
    model_fn = make_model_fn(keras)

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 4)]
    if fault == "nan_image":
        data, lr, every, bad_step, good_step = nan_at_step(tf, images, labels, 7), 0.016, 3, 7, 6
    else:  # the first update makes the weights infinite; the step-1 loss is still finite
        data = tf.data.Dataset.from_tensors((images, labels)).repeat()
        lr, every, bad_step, good_step = float("inf"), 1, 1, None
    config = training.TrainConfig(
        batch_size=4,
        num_train_examples=40,
        train_steps=10,
        base_learning_rate=lr,
        warmup_epochs=0,
        checkpoint_every=every,
        quiet=True,
    )
    model_dir = str(tmp_path)
    with pytest.raises(training.NonFiniteLossError, match=f"at step {bad_step};") as error:
        training.train(model_fn, config, data, model_dir)
    assert error.value.step == bad_step
    assert isinstance(error.value, FloatingPointError)
    latest = tf.train.latest_checkpoint(model_dir)
    if good_step is None:
        assert latest is None and "none yet" in str(error.value)
        return
    assert latest.endswith(f"ckpt-{good_step}") and latest in str(error.value)
    assert checkpoint_step(tf, latest) == good_step
    model = model_fn()
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    assert all(np.isfinite(w).all() for w in model.get_weights())
