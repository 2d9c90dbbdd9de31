"""Files that ship with the package: the flagfiles (``configs/*.cfg``) and the CIFAR-10 demo
sample (``sample_data/cifar10/``), and the one rule that finds them from any folder.

A relative path whose first part is ``configs`` or ``sample_data`` is taken relative to the
working directory when something is there, otherwise from this folder. So
``--flagfile=configs/demo.cfg`` and the flagfiles' data patterns (``sample_data/cifar10/train-*``)
work in a checkout and after ``pip install`` alike, wherever the command runs. Every
noisy_student command line parses its flags with ``noisy_student.cli.runner.parse_flags``,
which applies the rule.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.abspath(__file__))
CONFIGS_DIR = os.path.join(ROOT, "configs")
SAMPLE_DIR = os.path.join(ROOT, "sample_data", "cifar10")
BUNDLED_FOLDERS = ("configs", "sample_data")


def config_path(name: str) -> str:
    """The bundled flagfile ``configs/<name>.cfg`` (``name`` as ``demo`` or ``svhn``)."""
    path = os.path.join(CONFIGS_DIR, f"{name}.cfg")
    if not os.path.isfile(path):
        names = sorted(f[:-4] for f in os.listdir(CONFIGS_DIR) if f.endswith(".cfg"))
        raise FileNotFoundError(f"no bundled flagfile {name!r}; there are {', '.join(names)}")
    return path


def resolve(path: str) -> str:
    """``path`` itself, or its bundled copy when it is a relative ``configs/...`` or
    ``sample_data/...`` path (a file pattern is allowed) that matches nothing relative to the
    working directory but matches bundled files (files only: a run or output folder named
    ``sample_data/...`` is never redirected into the package)."""
    if not path or os.path.isabs(path) or ":" in path:  # absolute, gs://, tfds:NAME
        return path
    if os.path.normpath(path).split(os.sep)[0] not in BUNDLED_FOLDERS or glob.glob(path):
        return path
    bundled = os.path.join(ROOT, path)
    return bundled if any(os.path.isfile(match) for match in glob.glob(bundled)) else path


def resolve_flagfiles(argv: Sequence[str]) -> list[str]:
    """``argv`` with the path of every ``--flagfile`` argument passed through :func:`resolve`
    (``--flagfile=PATH`` and ``--flagfile PATH``, one or two dashes)."""
    out = list(argv)
    for i, arg in enumerate(out):
        name, sep, value = arg.partition("=")
        if name in ("--flagfile", "-flagfile"):
            if sep:
                out[i] = f"{name}={resolve(value)}"
            elif i + 1 < len(out):
                out[i + 1] = resolve(out[i + 1])
    return out


def resolve_flag_values(flag_values) -> None:
    """Passes every parsed string flag (and every item of a list flag) through
    :func:`resolve`, so the flagfiles' ``sample_data/...`` patterns find the bundled sample."""
    for name in flag_values:
        flag = flag_values[name]
        value = flag.value
        if isinstance(value, str):
            resolved = resolve(value)
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            resolved = [resolve(item) for item in value]
        else:
            continue
        if resolved != value:
            flag.value = resolved
