"""tf.distribute strategy by name: default, mirrored, multi_worker (TF_CONFIG), tpu."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import tensorflow as tf

from noisy_student.config import STRATEGIES

DatasetFn = Callable[[int, tf.distribute.InputContext], tf.data.Dataset]
DataSource = DatasetFn | tf.data.Dataset


def make_strategy(name: str = "default", tpu_address: str | None = None) -> tf.distribute.Strategy:
    """Builds a strategy. Create it at program start, before other TensorFlow work
    (multi_worker and tpu require this).

    default: the single-device default strategy; mirrored: all local GPUs (or the CPU);
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG;
    tpu: TPUStrategy on `tpu_address` (a name, grpc:// address or 'local' for a TPU VM).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "local")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown distribution strategy {name!r}; use one of {STRATEGIES}.")


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    example = (
        '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not raw:
        raise ValueError(
            "The multi_worker strategy needs the TF_CONFIG environment variable, e.g. "
            f"TF_CONFIG='{example}' (same cluster on every worker, its own task index)."
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}); expected e.g. {example}"
        ) from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(f"TF_CONFIG needs 'cluster' and 'task' entries, e.g. {example}")


def sync_batch_norm_for(strategy: tf.distribute.Strategy) -> bool:
    """Cross-replica batch norm whenever the global batch is split over several replicas;
    pass it to the model builder (`create_model(..., sync_batch_norm=...)`)."""
    return strategy.num_replicas_in_sync > 1


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_id is None:
        return 0
    return int(resolver.task_id)


def distribute(strategy: tf.distribute.Strategy, sources: list[DataSource],
               global_batches: list[int]):
    """A distributed dataset of (zipped, when several) sources."""
    if all(isinstance(s, tf.data.Dataset) for s in sources):
        dataset = sources[0] if len(sources) == 1 else tf.data.Dataset.zip(tuple(sources))
        return strategy.experimental_distribute_dataset(dataset)
    if not all(callable(s) and not isinstance(s, tf.data.Dataset) for s in sources):
        raise TypeError(
            "Give every dataset either as a tf.data.Dataset of global batches or as a "
            "function (per_replica_batch_size, input_context) -> tf.data.Dataset; not mixed."
        )

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        datasets = tuple(
            source(context.get_per_replica_batch_size(batch), context)
            for source, batch in zip(sources, global_batches, strict=True)
        )
        return datasets[0] if len(datasets) == 1 else tf.data.Dataset.zip(datasets)

    return strategy.distribute_datasets_from_function(dataset_fn)
