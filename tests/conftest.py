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
