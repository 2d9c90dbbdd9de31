"""glibc's allocator setting for a TensorFlow process on the CPU: keep freed memory.

With glibc's defaults, the large tensors of every training step are returned to the kernel when
freed and page-faulted back in at the next step (3.7M minor faults and 13 s of system CPU a
minute for the CIFAR-10 student's step). Keeping freed blocks in the heap instead (mmap threshold
fixed at its 32 MB maximum, trimming off) made that step 1.25x faster on a 2-core EPYC
(benchmarks/results/trainer_throughput.md). The heap then stays at its peak size, which a
training or labeling process reaches anyway.

Every command line of the project calls :func:`keep_freed_memory` at start-up. It does nothing
off glibc, when the user chose the allocator's settings (``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` in the environment) or when ``NOISY_STUDENT_SYSTEM_MALLOC=1``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

OPT_OUT = "NOISY_STUDENT_SYSTEM_MALLOC"
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# mallopt parameters (malloc.h) and values: glibc's largest mmap threshold on 64-bit systems
# (larger blocks are always mapped), and the largest trim threshold an int can hold.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Sets glibc to keep freed memory for reuse; True when set (see the module's docstring)."""
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
