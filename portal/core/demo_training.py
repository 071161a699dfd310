"""The demo model's training as the banner on every page words it (`make run` trains it on
first start): read from the progress file that `run_portal`, `inference_worker.demo` and
`inference_worker.train` keep, with the minutes left from `inference_worker.progress`. The
page renders it, and `GET /api/status/demo-model/` gives the same words to the page's script,
which updates the banner without a reload."""

import datetime as dt

from django.conf import settings

from inference_worker import progress

# The states in which the banner is final: the page's script stops asking.
FINAL_STATES = (progress.DONE, progress.FAILED)


def _minutes(minutes: int) -> str:
    return f"about {minutes} minute{'' if minutes == 1 else 's'} left"


def _doing(status: dict) -> str:
    state = status.get("state")
    if state == progress.STARTING:
        return "starting"
    if state == progress.PHANTOMS:
        return f"making phantoms, {status.get('done', 0):,} of {status.get('total', 0):,}"
    if state == progress.PREPROCESSING:
        return "preparing the images"
    if state == progress.TRAINING:
        return f"training, epoch {status.get('epoch')} of {status.get('epochs')}"
    return str(state)


def demo_training_status(*, now: dt.datetime | None = None) -> dict:
    """`{state, minutes_left, text}`: state None (and no text) when no demo model was ever
    started here; `done` says the model is ready, `failed` where to look."""
    status = progress.read(settings.DATA_DIR / "models" / "demo")
    if status is None:
        return {"state": None, "minutes_left": None, "text": None}
    state = status.get("state")
    if state == progress.DONE:
        text = "Demo model: trained; it predicts every demo image now (see Jobs)."
        return {"state": state, "minutes_left": None, "text": text}
    if state == progress.FAILED:
        text = (
            "Demo model: training failed (exit status "
            f"{status.get('exit_status')}); see models/demo/training.log in the data folder."
        )
        return {"state": state, "minutes_left": None, "text": text}
    minutes = progress.minutes_left(status, now or dt.datetime.now(dt.UTC))
    text = f"Demo model: {_doing(status)}; {_minutes(minutes or 1)}"
    best = status.get("best_val_mae_months")
    if state == progress.TRAINING and isinstance(best, int | float):
        text += f"; best validation MAE so far {best:.1f} months"
    text += ". The portal works meanwhile."
    return {"state": state, "minutes_left": minutes, "text": text}
