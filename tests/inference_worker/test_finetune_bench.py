"""`bench/finetune.py` in a tiny mode: it trains a parent on north phantoms, makes the three new
versions with the worker's own code, and prints each east MAE beside the goal. The goal itself is
the benchmark's (bench/RESULTS.md), not asserted on phantoms this small."""

import re

import pytest

from tests.benches import run_bench

NUMBER = r"\d+\.\d+"

pytestmark = [pytest.mark.slow, pytest.mark.train]


def test_the_bench_prints_parent_and_new_east_mae_beside_the_goal(tmp_path):
    out = run_bench(
        "finetune.py",
        *("--north", "40", "--curated", "16", "--held-out", "12"),
        *("--epochs", "1", "--finetune-epochs", "1", "--size", "64"),
        *("--north-data", str(tmp_path / "none")),
    )
    assert re.search(rf"parent east MAE: {NUMBER} months", out), out
    for name in ("east-linear", "east-isotonic", "east-finetune"):
        ratio = rf"new/parent {NUMBER} \(goal <= 0\.90: (not )?met\)"
        assert re.search(rf"{name} +east MAE +{NUMBER} months, {ratio}", out), out
    assert re.search(r"best: east-\w+, east MAE .* \(goal >= 10%\): (met|NOT met)", out), out
