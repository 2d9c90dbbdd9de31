"""report.md from a run directory's manifest and eval results."""

import json

import pytest

from noisy_student.report import write_report


def test_report_lists_each_iteration(tmp_path):
    stages = {
        "teacher": {"model": "b0", "seconds": 125.0},
        "teacher/eval": {"top1": 0.5573, "top5": 0.9, "num_examples": 1000, "seconds": 3.0},
        "iter1/label": {"seconds": 60.0},
        "iter1/student": {"model": "b1", "seconds": 61.0},
        "iter1/eval": {"top1": 0.5594, "top5": 0.91, "num_examples": 1000, "seconds": 3.0},
        "iter2/student": {"model": "b2", "seconds": 10.0},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    (tmp_path / "eval" / "iter1").mkdir(parents=True)
    (tmp_path / "eval" / "iter1" / "imagenet_c.json").write_text(json.dumps({"mCE": 0.283}))
    text = open(write_report(str(tmp_path))).read()
    assert "| teacher | b0 | 55.73% | 90.00% | - | 1000 | 2m05s |" in text
    # Gain: 55.94 - 55.73 = +0.21 points.
    assert "| student 1 | b1 | 55.94% | 91.00% | +0.21 | 1000 | 1m01s |" in text
    assert "| student 2 | b2 | - | - | - | - | 0m10s |" in text  # not evaluated yet
    assert "| student 1 | imagenet_c | mCE | 28.30% |" in text
    from noisy_student import evaluate_cli

    result = evaluate_cli.run(evaluate_cli.EvalOptions(model=str(tmp_path), benchmark="report"))
    assert open(result["report"]).read() == text
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_report(str(tmp_path / "eval"))
