"""Real CIFAR-10 test images for tests (the shared uint8 .npz; see its README)."""

import os

import numpy as np
import pytest

_CANDIDATES = (
    os.environ.get("CIFAR10_DIR", ""),
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10"),
    "/work/shared/data/cifar10",
)


def cifar_test_images(count: int) -> np.ndarray:
    """The first `count` images of cifar10_test.npz, uint8 [count, 32, 32, 3]."""
    for directory in _CANDIDATES:
        path = os.path.join(directory, "cifar10_test.npz")
        if directory and os.path.exists(path):
            with np.load(path) as data:
                return data["images"][:count]
    pytest.skip("CIFAR-10 data not found; set CIFAR10_DIR to the folder of cifar10_test.npz")
