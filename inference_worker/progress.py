"""Training progress: the `progress.json` that `train` (and, for the demo model, `demo` and the
portal's `run_portal`) keep beside the checkpoint, and the estimate of the time left that the
portal's banner shows. Plain Python: the portal reads it too.

States, in order: `starting` (run_portal, the moment it starts the demo trainer, before that
process has done anything), `phantoms` (demo: making the phantoms, `done` of `total`),
`preprocessing` (train: the image cache over `images` images), `training` (train: `epoch` of
`epochs`, its own measured `eta_seconds`), `done`; and `failed` (run_portal: the trainer exited
with an error). Every write adds `updated_at`.

The demo recipe's cost on two CPU cores (DEMO_SECONDS_PER, from a timed run) gives the estimate
until the trainer has measured itself, and the time the docs state (`demo_expected_minutes()`).
"""

import datetime as dt
import json
import math
from pathlib import Path

PROGRESS = "progress.json"

STARTING = "starting"
PHANTOMS = "phantoms"
PREPROCESSING = "preprocessing"
TRAINING = "training"
DONE = "done"
FAILED = "failed"

# The demo recipe (inference_worker.demo): phantoms per site profile, two profiles, epochs.
DEMO_COUNT = 1500
DEMO_PROFILES = 2
DEMO_EPOCHS = 25
# Wall seconds on this project's two CPU cores per phantom made, per image preprocessed into
# the cache, and per image and epoch of training (validation included), from timed runs of
# `python -m inference_worker.demo` on a quiet machine (2026-12-06): the 3,000 phantoms in 89 s,
# cached at 256 px in 17 s, 25 epochs of 3,000 images in 430 s: 8 min 56 s in all. (The recipe
# before it, 15 epochs at 128 px, took 9 min 49 s in an earlier timed run and 4 min 30 s that
# day: a machine that other work shares is that much slower, which the phantoms' pace measures.)
DEMO_SECONDS_PER = {PHANTOMS: 0.030, PREPROCESSING: 0.0057, TRAINING: 0.0057}


def write(out: Path, **state) -> None:
    """Replace the progress file atomically (readers never see half of it)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{PROGRESS}.tmp"
    tmp.write_text(json.dumps({**state, "updated_at": dt.datetime.now(dt.UTC).isoformat()}))
    tmp.replace(out / PROGRESS)


def read(out: Path) -> dict | None:
    try:
        progress = json.loads((out / PROGRESS).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return progress if isinstance(progress, dict) else None


def demo_starting(out: Path) -> None:
    """What run_portal records before it starts the demo trainer: the banner shows from the
    first page on, with the recipe's estimate."""
    write(out, state=STARTING, images=DEMO_COUNT * DEMO_PROFILES, epochs=DEMO_EPOCHS)


def demo_expected_seconds(images: int = DEMO_COUNT * DEMO_PROFILES, epochs: int = DEMO_EPOCHS):
    """The whole demo recipe on two cores: phantoms, cache, training."""
    per = DEMO_SECONDS_PER
    return images * (per[PHANTOMS] + per[PREPROCESSING] + epochs * per[TRAINING])


def demo_expected_minutes() -> int:
    """The time the docs state for training the demo model on two cores."""
    return math.ceil(demo_expected_seconds() / 60)


def _since(progress: dict, now: dt.datetime, field: str = "updated_at") -> float:
    try:
        then = dt.datetime.fromisoformat(progress[field])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (now - then).total_seconds())


def _number(progress: dict, field: str, default: float) -> float:
    value = progress.get(field)
    return float(value) if isinstance(value, int | float) and value >= 0 else default


def seconds_left(progress: dict, now: dt.datetime) -> float | None:
    """Seconds until the model is trained: the trainer's own estimate once it trains, before
    that the recipe's cost, at the pace the phantoms were made; None when done or failed."""
    state = progress.get("state")
    per = DEMO_SECONDS_PER
    images = _number(progress, "images", DEMO_COUNT * DEMO_PROFILES)
    epochs = _number(progress, "epochs", DEMO_EPOCHS)
    training = images * epochs * per[TRAINING]
    if state == TRAINING:
        return max(0.0, _number(progress, "eta_seconds", 0) - _since(progress, now))
    if state == PREPROCESSING:
        return max(0.0, images * per[PREPROCESSING] - _since(progress, now)) + training
    if state == PHANTOMS:
        # The phantoms' pace measures this machine (its cores, and whatever shares them): what
        # follows is the recipe's cost at that pace.
        done, total = _number(progress, "done", 0), _number(progress, "total", images)
        rate = _since(progress, now, "started_at") / done if done >= 20 else per[PHANTOMS]
        pace = min(20.0, max(0.25, rate / per[PHANTOMS]))
        return (total - done) * rate + (images * per[PREPROCESSING] + training) * pace
    if state == STARTING:
        return max(0.0, demo_expected_seconds(int(images), int(epochs)) - _since(progress, now))
    return None


def minutes_left(progress: dict, now: dt.datetime) -> int | None:
    """Whole minutes left, rounded up (1 for the last minute); None when done or failed."""
    seconds = seconds_left(progress, now)
    return None if seconds is None else max(1, math.ceil(seconds / 60))
