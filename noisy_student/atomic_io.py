"""Small-file output that is either complete or absent: write a hidden temp name, then rename.

Works on local paths and on any filesystem `tf.io.gfile` knows (gs://, ...).
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf


def temp_path(path: str) -> str:
    """The hidden temporary name used while `path` is being written (same directory)."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp-{os.getpid()}")


def write_bytes_atomic(path: str, data: bytes) -> None:
    tmp = temp_path(path)
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str) -> Any | None:
    """The parsed JSON at `path`, or None when the file does not exist."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo that "
                             f"step") from err
