"""benchmarks/self_training_cifar10.py: the summary table's time and throughput columns for
stages trained in one sitting and for resumed ones."""

import pytest
from benchmark_modules import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("self_training_cifar10")


def test_resumed_stages_report_the_speed_of_the_steps_they_timed(bench):
    stages = {
        # one sitting: 1,000 steps x 128 images in 500 s of training (600 s with the rest)
        "teacher": {"steps": 1000, "seconds": 600.0, "train_seconds": 500.0},
        "teacher/eval": {"top1": 0.6, "seconds": 20.0},
        # resumed at step 1,000: 1,500 steps x 256 images over all sittings in 3,000 s
        "iter1/student": {"steps": 1500, "seconds": 1100.0, "train_seconds": 3000.0,
                          "resumed_from_step": 1000},
        # recorded before train_seconds existed: only the last sitting's 500 steps are timed
        "iter2/student": {"steps": 1500, "seconds": 1000.0, "resumed_from_step": 1000},
    }
    table = bench.summary_table({"stages": stages},
                                per_step={"teacher": 128, "student": 256})
    assert "| teacher | 10m00s | 1000 | 256.0 |" in table  # 1000 x 128 / 500
    assert ("| iter1/student | 18m20s (last sitting, from step 1000) | 1500 | 128.0 |"
            in table)  # 1500 x 256 / 3000
    assert ("| iter2/student | 16m40s (last sitting, from step 1000) | 1500 | 128.0 |"
            in table)  # 500 x 256 / 1000
    assert "| **total** | **>= 45m20s** | | |" in table  # 600 + 20 + 1100 + 1000 s
    whole = bench.summary_table({"stages": {"teacher": stages["teacher"]}},
                                per_step={"teacher": 128})
    assert "| **total** | **10m00s** | | |" in whole
