"""Worker index/count from arguments or TF_CONFIG, and the shard split."""

import json

import pytest

from noisy_student.run.workers import shards_for_worker, worker_info


def test_explicit_arguments_win_and_are_checked(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}))
    assert worker_info(2, 3) == (2, 3)
    with pytest.raises(ValueError, match="outside"):
        worker_info(3, 3)
    with pytest.raises(ValueError, match="both"):
        worker_info(1, None)


def test_tf_config_chief_first(monkeypatch):
    cluster = {"chief": ["c:1"], "worker": ["a:1", "b:1"], "ps": ["p:1"]}
    assert worker_info(tf_config={"cluster": cluster, "task": {"type": "chief", "index": 0}}) == (
        0, 3)
    config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    monkeypatch.setenv("TF_CONFIG", config)
    assert worker_info() == (2, 3)
    with pytest.raises(ValueError, match="no labeling work"):
        worker_info(tf_config={"cluster": cluster, "task": {"type": "ps", "index": 0}})


def test_no_tf_config_means_single_worker(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_info() == (0, 1)


def test_shards_partition_sorted_files():
    files = [f"s-{i:02d}" for i in range(7)][::-1]
    owned = [shards_for_worker(files, w, 3) for w in range(3)]
    assert owned[1] == [(1, "s-01"), (4, "s-04")]
    every = sorted(i for share in owned for i, _ in share)
    assert every == list(range(7))
