"""The scripts under benchmarks/ loaded as modules, for the tests of their functions."""

import importlib.util
import os
import sys
from types import ModuleType

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a fresh module named <name>, registered in sys.modules (which
    dataclasses need); benchmarks/ is on sys.path while it loads, for its sibling imports."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, BENCHMARKS)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCHMARKS)
    return module
