"""One writer per run directory: an exclusive lock file held while a command works there.

The lock is an `flock` on ``RUN_DIR/.lock`` (``.lock-worker<i>`` for worker i > 0 of a
multi-worker job: each worker role writes its own share, so each role has its own lock). The
file holds the holder's host, pid, start time and command, so a second command can say who has
it. The kernel releases an `flock` when its process dies, even by kill -9; a lock file that
still names a holder but is no longer locked is stale, and the next command takes it over with
a message. A clean exit empties the file.

Only local (and NFS) paths can be locked; for gs:// and other remote run directories the lock
is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator

LOCK_NAME = ".lock"

log = logging.getLogger(__name__)


class RunDirLockedError(RuntimeError):
    """Another live command holds the run directory's lock."""


def lock_path(run_dir: str, worker_index: int = 0) -> str:
    """The lock file of one worker role in `run_dir`."""
    suffix = f"-worker{worker_index}" if worker_index else ""
    return os.path.join(run_dir, LOCK_NAME + suffix)


def _holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 65536)
    try:
        return json.loads(data) if data.strip() else {}
    except json.JSONDecodeError:
        return {"unreadable": data[:200].decode("utf-8", "replace")}


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    command = " ".join(holder.get("command", [])) or "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {when} ({command})"


def _write_holder(fd: int) -> None:
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
              "command": sys.argv}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)


@contextlib.contextmanager
def run_dir_lock(run_dir: str, worker_index: int = 0) -> Iterator[str | None]:
    """Holds the run directory's lock of this worker role for the duration of the block;
    yields the lock file's path (None when the directory cannot be locked).

    Raises RunDirLockedError at once when another live command holds it.
    """
    if "://" in run_dir:
        log.warning("%s is not a local directory: no lock keeps two commands from writing to it "
                    "at once", run_dir)
        yield None
        return
    os.makedirs(run_dir, exist_ok=True)
    path = lock_path(run_dir, worker_index)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirLockedError(
                f"{run_dir} is in use by {_describe(_holder(fd))}: wait for that command to "
                f"finish (or stop it), or use another --run_dir (lock file {path})") from None
        previous = _holder(fd)
        if previous:
            log.warning("Taking over the stale lock of %s: that command ended without releasing "
                        "it (killed?); its unfinished work is resumed.", _describe(previous))
        _write_holder(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """Waits for and holds an exclusive `flock` on ``directory`` itself (no file is left
    behind) for a short read-modify-write that several commands may do at once, such as a
    manifest update by a running loop and by ``noisy-student-eval``. Remote paths are not
    locked."""
    if "://" in directory:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock
