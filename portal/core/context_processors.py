"""Template context shared by every page (the menu's, which reads roles, is
portal.accounts.context_processors)."""

from django.http import HttpRequest

from inference_worker import progress
from portal.core.demo_training import demo_training_status


def demo_model(request: HttpRequest) -> dict:
    """The demo model's training banner (`demo_training.demo_training_status`), on every page
    from the moment `make run` starts it until the model is trained."""
    status = demo_training_status()
    return {"demo_training": status if status["state"] not in (None, progress.DONE) else None}
