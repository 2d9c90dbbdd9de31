"""benchmarks/scale_simulation.py: the fit and the extrapolation of its summary."""

import pytest
from benchmark_modules import load_benchmark


def test_summary_fits_the_filter_cost_per_record_and_extrapolates():
    sim = load_benchmark("scale_simulation")

    def run(records, walls):
        # 1 worker: 2 s fixed + 50 us per record; other workers' CPU does not enter the fit.
        return {"records": records, "labeling": {"bytes_per_record": 196.0},
                "filter": [{"workers": w, "cpu_s": 2 + records * 50e-6 if w == 1 else 99.0,
                            "wall_s": wall, "peak_rss_mb": 100 + w + records / 1e4,
                            "passes_over_records": 1.0} for w, wall in walls.items()]}

    runs = [run(10_000, {1: 4.0, 4: 1.0}), run(100_000, {1: 9.0, 2: 5.0, 4: 3.0})]
    summary = sim.summarize(runs, [1, 2, 4])
    assert summary["records"] == [10_000, 100_000]
    assert summary["filter_cpu_us_per_record"] == pytest.approx(50)
    assert summary["filter_speedup_4_workers"] == pytest.approx(3.0)  # the largest size
    assert summary["extrapolated_filter_hours_300M_100_hosts"] == pytest.approx(
        3_000_000 * 50e-6 / 3600)
    assert summary["peak_rss_mb"] == pytest.approx(114)
    assert summary["bytes_per_pseudo_label_record"] <= 200
