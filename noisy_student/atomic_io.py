"""Output that is either complete or absent: write a hidden temp name, then rename. Every writer
of the package (JSON, text, PNG, TFRecord shards, models, SavedModels) goes through
`atomic_output` or the helpers below.

Works on local paths and on any filesystem `tf.io.gfile` knows (gs://, ...). Temp names carry
the writer's host and pid (`.<name>.tmp-<host>-<pid>[suffix]`), so `remove_stale_temps` can
delete what killed writers left behind without touching the files of live ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

_TEMP_NAME = re.compile(r"^\..+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)(?:\.[^-]*)?$")

log = logging.getLogger(__name__)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def temp_path(path: str, suffix: str = "") -> str:
    """The hidden temporary name used while `path` is being written (same directory); `suffix`
    keeps an extension a writer needs (e.g. ".keras")."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp-{_host()}-{os.getpid()}{suffix}")


def is_temp_name(name: str) -> bool:
    """True for a file name that `temp_path` makes (a writer's unfinished output)."""
    return _TEMP_NAME.match(name) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale_temp(name: str) -> bool:
    """True for a temp name of `temp_path` whose writer (on this host) is no longer running."""
    match = _TEMP_NAME.match(name)
    if not match or match["host"] not in (None, _host()):
        return False  # not ours, or another host's: only that host can tell whether it is live
    pid = int(match["pid"])
    return pid != os.getpid() and not _pid_alive(pid)


def remove_stale_temps(directory: str, *, recursive: bool = True, prefix: str = ".") -> list[str]:
    """Deletes the temp files and folders that killed writers left under `directory` (names
    starting with `prefix`); returns their paths. Local paths only (others are left alone)."""
    if "://" in directory or not os.path.isdir(directory):
        return []
    removed = []
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            if name.startswith(prefix) and is_stale_temp(name):
                path = os.path.join(root, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if os.path.isdir(os.path.join(root, d))] if recursive else []
    if removed:
        log.warning("Removed %d temporary file(s) of killed writers in %s (e.g. %s)",
                    len(removed), directory, os.path.basename(removed[0]))
    return removed


def discard(temporary: str) -> None:
    """Deletes an unfinished temp file or folder, if there."""
    if tf.io.gfile.isdir(temporary):
        tf.io.gfile.rmtree(temporary)
    elif tf.io.gfile.exists(temporary):
        tf.io.gfile.remove(temporary)


def move_into_place(temporary: str, path: str) -> None:
    """Renames a finished temp file or folder to `path`, replacing what is there. An existing
    folder (which a rename cannot replace) is renamed aside first and deleted after."""
    if tf.io.gfile.isdir(temporary) and tf.io.gfile.exists(path):
        old = temp_path(path, ".old")
        tf.io.gfile.rename(path, old)
        tf.io.gfile.rename(temporary, path)
        tf.io.gfile.rmtree(old)
    else:
        tf.io.gfile.rename(temporary, path, overwrite=True)


@contextlib.contextmanager
def atomic_output(path: str, suffix: str = "") -> Iterator[str]:
    """Yields the temp name to write `path` under (a file or a folder; `suffix` as in
    `temp_path`); moves it into place on a clean exit and deletes it on an exception, so
    `path` is either the complete new output or what it was before."""
    temporary = temp_path(path, suffix)
    try:
        yield temporary
        move_into_place(temporary, path)
    finally:
        discard(temporary)


def write_bytes_atomic(path: str, data: bytes) -> None:
    with atomic_output(path) as temporary, tf.io.gfile.GFile(temporary, "wb") as f:
        f.write(data)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str, obj: Any, *, indent: int | None = 1) -> None:
    """`obj` as JSON, keys sorted; `indent=None` writes one line (files read by programs on a
    serial path: the indented form goes through Python's slower encoder)."""
    text = json.dumps(obj, indent=indent, sort_keys=True)
    write_bytes_atomic(path, (text + "\n" if indent is not None else text).encode())


def read_json(path: str) -> Any | None:
    """The parsed JSON at `path`, or None when the file does not exist.

    A local file is read through one open descriptor to its end, so a writer renaming a new
    version into place meanwhile cannot cut it short (`tf.io.gfile` sizes the read by the
    path, which then names the new file)."""
    try:
        if "://" not in path:
            with open(path) as f:
                return json.load(f)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "r") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo that "
                         f"step") from err
