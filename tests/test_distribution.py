"""Distribution: strategy construction, and training a few steps of a tiny model under
MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 worker processes on
loopback) ends with the same weights as a single-device run of the same global batch.

The comparison uses sync_batch_norm=True, deterministic data (each step's global batch holds the
same images under any split) and no dropout/drop-connect, so the runs compute the same math; the
tolerance (atol 1e-5, rtol 1e-4) only allows for float32 summation order in the all-reduce.
The runs are subprocesses: logical devices and TF_CONFIG must be set before TensorFlow starts.
A fourth run trains on one device with oneDNN on (TensorFlow's default on x86, what users and
the benchmarks run; this suite runs with it off), so its own kernels, the fused batch norm among
them, are checked against the same reference.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HELPER = os.path.join(os.path.dirname(__file__), "helpers", "train_tiny.py")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command, env, log_path):
    with open(log_path, "w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_all(jobs, logs, timeout=400):
    """Waits for every job; if one fails, stops the others (a lone worker would wait forever)."""
    deadline = time.time() + timeout
    while any(job.poll() is None for job in jobs.values()):
        failed = [name for name, job in jobs.items() if job.poll() not in (None, 0)]
        if failed or time.time() > deadline:
            for job in jobs.values():
                if job.poll() is None:
                    job.kill()
                    job.wait()
            break
        time.sleep(0.2)
    for name, job in jobs.items():
        with open(logs[name]) as log:
            assert job.returncode == 0, f"{name} run failed:\n{log.read()[-4000:]}"


@pytest.fixture(scope="module")
def runs(tf, keras, tmp_path_factory):
    """Starts the mirrored run and the two workers, trains the single-device reference in this
    process meanwhile, and returns the folder with every run's outputs."""
    root = tmp_path_factory.mktemp("distribution")
    base = [sys.executable, HELPER, "--steps", str(STEPS), "--checkpoint_every", "3"]
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("TF_CONFIG", None)
    names = ("mirrored", "worker0", "worker1", "onednn")
    logs = {name: str(root / f"{name}.log") for name in names}
    jobs = {
        "mirrored": start(
            base
            + ["--model_dir", str(root / "mirrored"), "--out", str(root / "mirrored")]
            + ["--strategy", "mirrored", "--devices", "2"],
            env,
            logs["mirrored"],
        ),
        "onednn": start(
            base + ["--model_dir", str(root / "onednn"), "--out", str(root / "onednn")],
            dict(env, TF_ENABLE_ONEDNN_OPTS="1"),
            logs["onednn"],
        ),
    }
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        jobs[f"worker{index}"] = start(
            base
            + ["--model_dir", str(root / "multi_worker"), "--out", str(root / f"worker{index}")]
            + ["--strategy", "multi_worker"],
            dict(env, TF_CONFIG=json.dumps(tf_config)),
            logs[f"worker{index}"],
        )
    try:
        sys.path.insert(0, os.path.dirname(HELPER))
        import train_tiny

        args = argparse.Namespace(steps=STEPS, checkpoint_every=3, seconds_per_batch=0.0)
        single = str(root / "single")
        train_tiny.run(args, tf.distribute.get_strategy(), single, single)
    finally:
        sys.path.remove(os.path.dirname(HELPER))
        wait_all(jobs, logs)
    return root


def load(prefix):
    arrays = np.load(f"{prefix}.npz")
    with open(f"{prefix}.json") as handle:
        return arrays, json.load(handle)


def assert_same_training(got, want):
    (arrays, summary), (reference, reference_summary) = got, want
    assert summary["step"] == reference_summary["step"] == STEPS
    assert sorted(arrays.files) == sorted(reference.files)
    for key in arrays.files:
        np.testing.assert_allclose(arrays[key], reference[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert summary["metrics"]["loss"] == pytest.approx(reference_summary["metrics"]["loss"], 1e-5)


def test_mirrored_matches_single_device(runs):
    single = load(runs / "single")
    # The comparison is meaningful: training moved the weights well beyond the tolerance.
    arrays = single[0]
    moved = max(
        np.abs(arrays[k] - arrays[k.replace("raw_", "init_")]).max()
        for k in arrays.files
        if k.startswith("raw_")
    )
    assert moved > 1e-2
    assert_same_training(load(runs / "mirrored"), single)


def test_multi_worker_matches_single_device(runs):
    single = load(runs / "single")
    for index in range(2):
        assert_same_training(load(runs / f"worker{index}"), single)
    files = sorted(os.listdir(runs / "multi_worker"))
    assert "ckpt-6.index" in files and "checkpoint" in files
    assert not [f for f in files if f.startswith(".worker_scratch")]  # scratch copies removed


def test_onednn_matches_default_kernels(runs):
    """oneDNN's kernels sum in another order: on this 2-core x86 machine the weights after 6
    steps differed from the suite's kernels by at most 1.2e-7 (so oneDNN was in use), well
    inside the tolerance; a wrong kernel result would be far outside it."""
    assert_same_training(load(runs / "onednn"), load(runs / "single"))


def test_make_strategy_errors(tf, monkeypatch):
    from noisy_student.training import make_strategy, sync_batch_norm_for

    default = make_strategy("default")
    assert default is tf.distribute.get_strategy() and not sync_batch_norm_for(default)
    with pytest.raises(ValueError, match="Unknown distribution strategy 'gpu'"):
        make_strategy("gpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="'cluster' and 'task'"):
        make_strategy("multi_worker")
