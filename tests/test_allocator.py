"""The command lines' allocator setting: freed memory stays in the heap, so reallocating it
costs no page faults, unless the user opts out or set glibc's variables themselves."""

import os
import platform
import subprocess
import sys

import pytest

from noisy_student.cli import allocator

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the setting applies to glibc only")

# A step-like pattern: 16 arrays of 8 MB allocated, touched and freed, 20 times over; prints
# what keep_freed_memory returned and the minor page faults of a second round of it.
PROGRAM = """
import resource
import numpy as np
from noisy_student.cli.allocator import keep_freed_memory

kept = keep_freed_memory()

def work():
    for _ in range(20):
        arrays = [np.ones(1 << 20) for _ in range(16)]
        del arrays

work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
work()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items()
             if k not in (allocator.OPT_OUT, *allocator.USER_SETTINGS)}
    out = subprocess.run([sys.executable, "-c", PROGRAM], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


def test_freed_memory_is_reused_without_page_faults():
    kept, faults = run()
    default, default_faults = run(**{allocator.OPT_OUT: "1"})
    assert (kept, default) == ("True", "False")
    # 320 allocations of 8 MB: with glibc's defaults most go back to the kernel and fault in
    # again (2,048 pages each); kept in the heap they fault in once, in the first round.
    assert default_faults > 50_000
    assert faults < default_faults / 20


@pytest.mark.parametrize("name", allocator.USER_SETTINGS)
def test_the_users_own_settings_win(name):
    kept, _ = run(**{name: "65536"})
    assert kept == "False"
