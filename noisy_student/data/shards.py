"""Writing sharded TFRecord sets (ImageNet naming), atomically (their ``labels.txt``:
``noisy_student.data.labels_file``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import tensorflow as tf

from noisy_student.data.records import atomic_tfrecord_writer

T = TypeVar("T")


def shard_name(split: str, index: int, num_shards: int) -> str:
    """``<split>-%05d-of-%05d``, the ImageNet TFRecord naming."""
    return f"{split}-{index:05d}-of-{num_shards:05d}"


def check_no_stale_shards(output_dir: str, split: str, num_shards: int) -> None:
    """Refuses to mix shard sets: ``<split>-*`` globs would read both the old and the new one."""
    pattern = re.compile(re.escape(split) + r"-\d{5}-of-(\d{5})$")
    if not tf.io.gfile.isdir(output_dir):
        return
    stale = sorted(name for name in tf.io.gfile.listdir(output_dir)
                   if (m := pattern.match(name)) and int(m.group(1)) != num_shards)
    if stale:
        raise FileExistsError(
            f"{output_dir} already holds '{split}' shards of another set ({stale[0]}, ...); "
            f"remove them or choose another --split/--output_dir")


def write_sharded(output_dir: str, split: str, items: Sequence[T], num_shards: int,
                  encode: Callable[[T], bytes | None], *, num_threads: int = 1,
                  on_item: Callable[[], None] | None = None) -> list[str]:
    """Writes ``encode(item)`` for items in order into ``num_shards`` contiguous, near-equal
    shards (``None`` results are left out). Items are encoded on ``num_threads`` threads, one
    shard at a time, so memory stays bounded; each shard is written atomically."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    check_no_stale_shards(output_dir, split, num_shards)
    tf.io.gfile.makedirs(output_dir)
    bounds = np.linspace(0, len(items), num_shards + 1).round().astype(int)
    paths = []
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        for index in range(num_shards):
            path = os.path.join(output_dir, shard_name(split, index, num_shards))
            with atomic_tfrecord_writer(path) as writer:
                for record in pool.map(encode, items[bounds[index]:bounds[index + 1]]):
                    if record is not None:
                        writer.write(record)
                    if on_item is not None:
                        on_item()
            paths.append(path)
    return paths
