"""Real CIFAR-10 test images (the shared uint8 .npz, located by `data_helpers.npz_dir`)."""

import os

import numpy as np
import pytest
from data_helpers import npz_dir


def cifar_test_images(count: int) -> np.ndarray:
    """The first `count` images of cifar10_test.npz, uint8 [count, 32, 32, 3]."""
    directory = npz_dir()
    if directory is None:
        pytest.skip("shared CIFAR-10 .npz not found; set CIFAR10_NPZ_DIR")
    with np.load(os.path.join(directory, "cifar10_test.npz")) as data:
        return data["images"][:count]
