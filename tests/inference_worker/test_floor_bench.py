"""`bench/floor.py`: the oracle that measures how good a model can be on phantoms sees the
anatomy the renderer draws (all of it, and not the age), and is scored on children it never saw;
the script runs end to end and prints the goal beside the measured ratio."""

import dataclasses
import re

import numpy as np
import pytest
import torch

from inference_worker import checkpoint
from inference_worker.model import build_model
from inference_worker.synthetic import PROFILES, generate, imaging
from inference_worker.synthetic.generator import replay
from tests.benches import load_bench, run_bench

floor = load_bench("floor.py")


def test_the_picture_depends_on_the_age_only_through_the_anatomy_the_oracle_sees(monkeypatch):
    child, _ = replay(1, 3, "north")[0]
    fixed = imaging.anatomy(child, 7.0)
    monkeypatch.setattr(imaging, "anatomy", lambda child, years: fixed)
    profile = PROFILES["north"]
    young = imaging.render(child, 0.5, profile, np.random.default_rng(1))
    old = imaging.render(child, 16.0, profile, np.random.default_rng(1))
    assert np.array_equal(young, old)


def test_the_oracle_sees_the_anatomy_and_the_sex_but_not_the_age():
    exams = floor.examinations(40, 11, ("north",))
    days = np.array([d for _, d in exams], dtype=float)
    seen = floor.measure(exams, 0.0)
    fields = [f.name for f in dataclasses.fields(imaging.Anatomy)]
    assert list(floor.COLUMNS) == [*fields, "male"]
    assert not [c for c in floor.COLUMNS if re.search("age|year|day|month", c)]
    assert seen.shape == (len(exams), len(floor.COLUMNS))
    for j, name in enumerate(floor.COLUMNS):  # no column is the age, nor a rescaled copy of it
        if np.std(seen[:, j]) > 0:
            assert abs(np.corrcoef(seen[:, j], days)[0, 1]) < 0.999, name
    # The exact anatomy: what `render` draws, lengths as logarithms.
    child, age = exams[0]
    width = imaging.anatomy(child, age / 365.25).width_mm
    assert seen[0, floor.COLUMNS.index("width_mm")] == pytest.approx(np.log(width))
    assert seen[0, -1] == (child.sex == "M")
    blurred = floor.measure(exams, 0.1)
    assert not np.allclose(blurred[:, :-1], seen[:, :-1])


def test_the_held_out_children_are_the_phantoms_the_demo_model_is_scored_on(tmp_path):
    rows = generate(tmp_path, 5, floor.HELD_OUT_SEED, "south")
    exams = floor.examinations(5, floor.HELD_OUT_SEED, ("south",))
    assert [(r["patient"], r["true_age_days"]) for r in rows] == [
        (c.patient_id, d) for c, d in exams
    ]


@pytest.fixture
def one_thread():
    """A small network: one thread is faster; the tests after this one get theirs back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_floor_is_measured_on_children_the_oracle_never_saw(one_thread):
    train = replay(1500, floor.ORACLE_SEED, "north")
    held_out = floor.examinations(30, floor.HELD_OUT_SEED, floor.PROFILES)
    assert not {c.patient_id for c, _ in train} & {c.patient_id for c, _ in held_out}
    predicted = floor.oracle_predictions(train, held_out, 0.0, epochs=8)
    true = np.array([d for _, d in held_out], dtype=float)
    mae = np.abs(predicted - true).mean()
    assert mae < np.abs(true - true.mean()).mean() / 5  # it learnt the anatomy
    with pytest.raises(ValueError, match="share children"):
        floor.oracle_predictions(train, train[:30], 0.0, epochs=1)


@pytest.mark.slow
def test_the_bench_prints_the_floor_and_the_demo_model_against_its_goal(tmp_path):
    torch.manual_seed(0)
    checkpoint.save(  # an untrained model: the bench's path, not its figures
        tmp_path / "model",
        build_model("ca_resnet18", width=8).eval(),
        {
            "name": "tiny",
            "architecture": "ca_resnet18",
            "width": 8,
            "input_size": 64,
            "normalisation": {"age_mean_days": 3000.0, "age_std_days": 1900.0},
        },
    )
    out = run_bench(
        "floor.py",
        *("--demo", str(tmp_path / "model"), "--phantoms", "3", "--train", "400"),
        *("--epochs", "2", "--errors", "0,0.1"),
        timeout=300,
    )
    assert re.search(r"^overall\s+6\s", out, re.M), out
    assert re.search(r"floor \(oracle on the exact anatomy\): MAE \d+\.\d+ months", out), out
    ratio = re.search(r"demo model / floor = (\d+\.\d\d) \(goal: at most 1\.5: ([a-z ]+)\)", out)
    assert ratio, out
    assert (ratio[2] == "met") == (float(ratio[1]) <= 1.5), out
