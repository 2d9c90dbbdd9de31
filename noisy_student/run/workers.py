"""Which share of a sharded job this process does (worker index/count and the shard split), and
waiting for the other workers' shares.

The index and count come from explicit arguments (flags) or, when those are absent, from the
``TF_CONFIG`` environment variable that `tf.distribute` multi-worker jobs already set. Shard ``i``
(of the sorted input files) goes to worker ``i % num_workers``, so every shard has exactly one
owner and the split needs no coordination between workers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

log = logging.getLogger(__name__)

# Task types that do a share of the work in a TF_CONFIG cluster; "ps" and "evaluator" do not.
_WORKING_TASK_TYPES = ("chief", "master", "worker")


class WorkerInfo(NamedTuple):
    index: int
    count: int


def _from_tf_config(tf_config: str | Mapping) -> WorkerInfo:
    config = json.loads(tf_config) if isinstance(tf_config, str) else dict(tf_config)
    cluster = config.get("cluster") or {}
    task = config.get("task") or {}
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in _WORKING_TASK_TYPES:
        raise ValueError(
            f"TF_CONFIG task type {task_type!r} does no labeling work; run labeling on a chief or "
            f"worker task, or pass worker_index/num_workers explicitly")
    # Chief tasks come first (index 0..), then the workers: the MultiWorkerMirroredStrategy order.
    offset, index = 0, None
    for kind in _WORKING_TASK_TYPES:
        members = cluster.get(kind) or []
        if kind == task_type:
            if not 0 <= int(task_index) < len(members):
                raise ValueError(f"TF_CONFIG task {task_type}:{task_index} is not in its cluster "
                                 f"({len(members)} {task_type} tasks listed)")
            index = offset + int(task_index)
        offset += len(members)
    return WorkerInfo(index, offset)


def worker_info(worker_index: int | None = None, num_workers: int | None = None,
                tf_config: str | Mapping | None = None) -> WorkerInfo:
    """Returns (index, count) of this worker.

    Explicit arguments win; if both are None, TF_CONFIG (the argument, else the environment
    variable) decides; without either, this is the only worker (0, 1).
    """
    if (worker_index is None) != (num_workers is None):
        raise ValueError("give both worker_index and num_workers, or neither (to use TF_CONFIG)")
    if worker_index is None:
        tf_config = tf_config if tf_config is not None else os.environ.get("TF_CONFIG")
        info = _from_tf_config(tf_config) if tf_config else WorkerInfo(0, 1)
    else:
        info = WorkerInfo(int(worker_index), int(num_workers))
    if info.count < 1 or not 0 <= info.index < info.count:
        raise ValueError(f"worker index {info.index} is outside 0..{info.count - 1} "
                         f"(num_workers={info.count})")
    return info


def shards_for_worker(files: Sequence[str], worker_index: int,
                      num_workers: int) -> list[tuple[int, str]]:
    """The (global shard index, path) pairs this worker owns: shard i goes to worker i % N.

    `files` is sorted first, so every worker sees the same global order.
    """
    info = worker_info(worker_index, num_workers)
    ordered = sorted(files)
    return [(i, path) for i, path in enumerate(ordered) if i % info.count == info.index]


def wait_for(what: str, done: Callable[[], bool], timeout: float, poll: float = 10.0) -> None:
    """Blocks until another worker's part of a stage is `done` (multi-worker runs only), asking
    every `poll` seconds (at most a tenth of the timeout); a TimeoutError after `timeout`
    seconds (--wait_timeout) says how to resume."""
    start = next_log = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            raise TimeoutError(
                f"Waited {timeout:.0f} s (--wait_timeout) for {what}; is every worker "
                "running? Rerun the same command to resume."
            )
        if time.monotonic() >= next_log:
            log.info("Waiting for %s.", what)
            next_log += 300
        time.sleep(min(poll, timeout / 10))
