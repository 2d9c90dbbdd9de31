"""What a benchmark result records about where and how it was measured: the command, the
checked-out commit, the date, the host and the machine's load."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def commit() -> str:
    """The checked-out short commit, "+changes" when tracked files differ from it ("" outside
    a git checkout)."""
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=HERE, check=False, capture_output=True,
                              text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    if head and git("status", "--porcelain", "--untracked-files=no"):
        return head + "+changes"
    return head


def run_facts(argv: list[str] | None = None) -> dict:
    """command, commit, date (local, minutes), host and load_average of this run."""
    return {"command": " ".join(["python", *(sys.argv if argv is None else argv)]),
            "commit": commit(), "date": datetime.datetime.now().isoformat(timespec="minutes"),
            "host": socket.gethostname(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}
