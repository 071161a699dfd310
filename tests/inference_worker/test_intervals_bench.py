"""`bench/intervals.py`: over random calibration/test splits of one pool of predictions it prints
each judged age group's mean coverage beside the goal and its median width beside 2x the MAE,
with verdicts that follow the figures; it runs from a cached pool without the model, and
without either it says so and stops."""

import sys

import numpy as np

from tests.benches import load_bench
from tests.inference_worker.test_conformal import synthetic

intervals = load_bench("intervals.py")


def test_the_rows_judge_groups_of_50_or_more_against_both_goals(capsys):
    true, pred, site = synthetic(3000, seed=11)
    true, pred = np.append(true, [100.0] * 3), np.append(pred, [400.0] * 3)
    pool = (true, pred, np.array([*site, "north", "north", "north"], dtype=object))
    rows = intervals.summarise(
        pool, {"taxonomy": "label"}, calibration=1000, splits=3, coverage=0.9, seed=1
    )
    judged, met = intervals.print_rows("label, curves (portal)", rows, 0.9)
    out = capsys.readouterr().out
    assert "0.88-0.92" in out
    assert rows["overall"]["pool"] == len(true)
    big = [g for g, row in rows.items() if g != "overall" and row["n"] >= intervals.MIN_GROUP]
    assert judged == len(big) == 5
    assert met == sum(abs(rows[g]["coverage"] - 0.9) <= 0.02 for g in big)
    for group in big:
        row = rows[group]
        line = next(line for line in out.splitlines() if line.split()[:1] == [group])
        assert f"coverage {intervals.verdict(abs(row['coverage'] - 0.9) <= 0.02)}" in line
        assert f"width {intervals.verdict(row['width_mae'] <= 2)}" in line
        assert 0 <= row["spread"] < 0.1
        assert row["precision"] > 0


def test_a_split_keeps_each_patients_films_on_one_side():
    true, pred, site = synthetic(1200, seed=14)
    patient = np.arange(len(true)) // 3  # three films each
    rows = intervals.summarise(
        (true, pred, site, patient),
        {"taxonomy": "label"},
        calibration=500,
        splits=2,
        coverage=0.9,
        seed=2,
    )
    # Whole patients calibrate: the first 167 of 400 (501 films), the other 699 films test.
    assert rows["overall"]["n"] == 699


def test_a_cached_pool_runs_without_the_model(tmp_path, monkeypatch, capsys):
    true, pred, site = synthetic(1500, seed=13)
    cache = tmp_path / "pool.npz"
    np.savez(cache, true=true, pred=pred, site=site.astype(str))
    argv = ["intervals.py", "--demo", str(tmp_path), "--cache", str(cache), "--splits", "2"]
    monkeypatch.setattr(sys, "argv", [*argv, "--calibration", "500"])
    intervals.main()
    out = capsys.readouterr().out
    assert "a pool of 1500 phantoms" in out
    for name, _ in intervals.METHODS:
        assert f"\n{name}\n" in out
    assert "portal's cells: mean coverage within the goal in" in out


def test_without_a_demo_model_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["intervals.py", "--demo", str(tmp_path)])
    intervals.main()
    assert "intervals skipped" in capsys.readouterr().out
