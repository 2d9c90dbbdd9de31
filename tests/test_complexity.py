"""Multiply-add counts against the EfficientNet paper's FLOPs column (REFERENCE §2.2)."""

import subprocess
import sys

import pytest

from efficientnet_tf import model_config
from efficientnet_tf.complexity import count_macs

# Paper Table 2 (multiply-adds, in billions, rounded to two significant digits there).
PAPER_GMACS = {"b0": 0.39, "b1": 0.70, "b2": 1.0, "b3": 1.8, "b4": 4.2, "b5": 9.9, "b7": 37.0}


def _gmacs(name: str, **kwargs) -> float:
    config = model_config(name)
    resolution = kwargs.pop("resolution", config["default_resolution"])
    return (
        count_macs(config["width_coefficient"], config["depth_coefficient"], resolution, **kwargs)
        / 1e9
    )


def test_b0_and_b7_in_the_issue_ranges():
    # 0.386 rounds to the paper's 0.39; the issue asks for 0.39-0.40 at two decimals.
    assert 0.39 <= round(_gmacs("b0"), 2) <= 0.40
    assert 37.0 <= _gmacs("b7") <= 38.5


@pytest.mark.parametrize("name", sorted(PAPER_GMACS))
def test_close_to_paper_table(name):
    # The paper rounds; B4/B5 are known to be quoted ~4% low (4.2 vs 4.39 derived in REFERENCE).
    assert _gmacs(name) == pytest.approx(PAPER_GMACS[name], rel=0.06)


def test_macs_grow_with_resolution_quadratically_in_the_conv_part():
    small = _gmacs("b0", resolution=224, include_top=False)
    large = _gmacs("b0", resolution=448, include_top=False)
    assert large == pytest.approx(4 * small, rel=0.01)


def test_stem_only_network_counts_by_hand():
    # One stage, one block, no expansion, no SE: stem + depthwise + project + head + dense.
    macs = count_macs(1.0, 1.0, 32, classes=10, blocks=["r1_k3_s11_e1_i32_o16"])
    stem = 16 * 16 * 27 * 32
    block = 16 * 16 * 9 * 32 + 16 * 16 * 32 * 16
    head = 16 * 16 * 16 * 1280 + 1280 * 10
    assert macs == stem + block + head


def test_cli_prints_a_row():
    out = subprocess.run(
        [sys.executable, "-m", "tools.count_flops", "--model=b0", "--noparams"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    row = next(line.split() for line in out.splitlines() if line.startswith("efficientnetb0"))
    assert row[1] == "224" and 0.39 <= round(float(row[2]), 2) <= 0.40
