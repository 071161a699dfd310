"""The training progress file and the demo model's estimate of the time left (issue 17: the
banner shows minutes left from the first second on)."""

import datetime as dt
import math

from inference_worker import demo, progress

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def stamped(**state) -> dict:
    return {**state, "updated_at": T0.isoformat()}


def test_starting_counts_down_the_recipes_whole_cost():
    whole = progress.demo_expected_seconds()
    starting = stamped(
        state="starting", images=progress.DEMO_COUNT * 2, epochs=progress.DEMO_EPOCHS
    )

    assert progress.seconds_left(starting, at(0)) == whole
    assert progress.seconds_left(starting, at(90)) == whole - 90
    assert progress.minutes_left(starting, at(0)) == progress.demo_expected_minutes()
    assert progress.seconds_left(stamped(state="starting", images=100, epochs=1), at(0)) < whole
    assert progress.minutes_left(starting, at(whole + 600)) == 1  # late: never "0 minutes"


def test_phantoms_measure_the_pace_at_which_the_rest_of_the_recipe_is_reckoned():
    per = progress.DEMO_SECONDS_PER
    rest = 100 * per["preprocessing"] + 100 * 2 * per["training"]
    making = {"state": "phantoms", "images": 100, "epochs": 2, "total": 100}
    making["started_at"] = T0.isoformat()

    # Twice the recipe's time a phantom: the rest takes twice its cost too.
    slow = progress.seconds_left({**making, "done": 50}, at(50 * 2 * per["phantoms"]))
    par = progress.seconds_left({**making, "done": 50}, at(50 * per["phantoms"]))
    assert math.isclose(slow, 50 * 2 * per["phantoms"] + 2 * rest)
    assert math.isclose(par, 50 * per["phantoms"] + rest)
    # Before 20 phantoms the rate is the recipe's.
    early = progress.seconds_left({**making, "done": 1}, at(30))
    assert math.isclose(early, 99 * per["phantoms"] + rest)  # pace 1


def test_training_counts_the_trainers_own_estimate_down_between_its_writes():
    training = stamped(state="training", epoch=3, epochs=15, eta_seconds=300)

    assert progress.seconds_left(training, at(0)) == 300
    assert progress.seconds_left(training, at(100)) == 200
    assert progress.minutes_left(training, at(100)) == 4  # 3 min 20 s: rounded up
    assert progress.seconds_left(training, at(400)) == 0


def test_a_finished_or_failed_training_has_no_time_left():
    assert progress.seconds_left(stamped(state="done"), at(0)) is None
    assert progress.minutes_left(stamped(state="failed"), at(0)) is None


def test_the_progress_file_is_replaced_whole_and_stamped(tmp_path):
    out = tmp_path / "models" / "demo"
    assert progress.read(out) is None

    progress.demo_starting(out)

    written = progress.read(out)
    assert written["state"] == "starting"
    assert written["images"] == progress.DEMO_COUNT * len(demo.PROFILES)
    assert written["epochs"] == progress.DEMO_EPOCHS
    assert dt.datetime.fromisoformat(written["updated_at"]).tzinfo is not None
    assert [p.name for p in out.iterdir()] == [progress.PROGRESS]
