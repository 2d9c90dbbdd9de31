"""TensorBoard scalars without the tensorboard package.

`tf.summary.scalar` lives in the tensorboard package, which TensorFlow does not install. The
event format is TensorFlow's own: a scalar is a float32 tensor summary tagged with the
'scalars' plugin, which TensorBoard's scalar dashboard reads. `pip install tensorboard` only to
view the logs.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

SCALARS_PLUGIN = "scalars"


def _scalar_metadata() -> bytes:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = SCALARS_PLUGIN
    return metadata.SerializeToString()


def write_scalars(writer, step: int, scalars: dict[str, float]) -> None:
    """Writes {tag: value} at `step` with a tf.summary writer and flushes it."""
    metadata = _scalar_metadata()
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=metadata)
    writer.flush()


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """All scalars in the event files under logdir: {tag: [(step, value), ...]} (for tests and
    quick inspection)."""
    from tensorflow.core.util import event_pb2

    result: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                result.setdefault(value.tag, []).append((event.step, number))
    return result
