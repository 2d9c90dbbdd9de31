"""Shared test setup: quiet TensorFlow/Keras logs, one process, small models only."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tf():
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@pytest.fixture(scope="session")
def keras():
    import keras

    keras.utils.disable_interactive_logging()
    return keras


@pytest.fixture
def console_records():
    """The records the console logger (``noisy_student.console``) emits during the test, taken
    by a handler on that logger itself: each emission is seen once, whatever handlers earlier
    tests left on the root logger or whether the logger propagates."""
    import logging

    from noisy_student import console

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    handler, level = Collect(logging.DEBUG), console.log.level
    console.log.addHandler(handler)
    console.log.setLevel(logging.INFO)
    try:
        yield records
    finally:
        console.log.removeHandler(handler)
        console.log.setLevel(level)
