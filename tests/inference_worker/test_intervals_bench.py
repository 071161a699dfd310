"""`bench/intervals.py`: prints each judged age group's coverage beside the goal and its median
width beside 2x the MAE, with a verdict that follows the figures; without a demo model it says
so and stops."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

from inference_worker import conformal
from tests.inference_worker.test_conformal import synthetic

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_intervals", ROOT / "bench" / "intervals.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_judges_groups_of_50_or_more_against_both_goals(capsys):
    bench = _bench()
    record = conformal.calibrate(*synthetic(3000, seed=11))
    true, pred, site = synthetic(800, seed=12)
    true, pred = np.append(true, [100.0] * 3), np.append(pred, [400.0] * 3)
    table = conformal.coverage_table(true, pred, [*site, "north", "north", "north"], record)
    judged, met = bench.print_table("cells by label", table, 0.9)
    out = capsys.readouterr().out
    assert "0.88-0.92" in out
    big = [g for g, row in table["by_group"].items() if row["n"] >= bench.MIN_GROUP]
    assert judged == len(big)
    expected = sum(
        abs(row["coverage"] - 0.9) <= 0.02 and row["median_width_months"] / row["mae_months"] <= 2
        for g, row in table["by_group"].items()
        if g in big
    )
    assert met == expected
    for group in big:
        line = next(line for line in out.splitlines() if line.split()[:1] == [group])
        assert "coverage meets" in line or "coverage MISSES" in line


def test_without_a_demo_model_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["intervals.py", "--demo", str(tmp_path)])
    _bench().main()
    assert "intervals skipped" in capsys.readouterr().out
