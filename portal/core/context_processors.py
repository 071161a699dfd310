"""Template context shared by every page."""

import json

from django.conf import settings
from django.http import HttpRequest

from portal.accounts.selectors import is_lead_anywhere


def navigation(request: HttpRequest) -> dict:
    """Leads see the audit log and their team in the menu. An error page for a request refused
    before authentication (a bad Host header) has no user: no lead menu."""
    user = getattr(request, "user", None)
    return {"nav_is_lead": user is not None and is_lead_anywhere(user=user)}


def demo_model(request: HttpRequest) -> dict:
    """Training progress of the demo model that `make run` trains on first start (read from
    the `progress.json` that `inference_worker.train` keeps), shown as a banner until done."""
    path = settings.DATA_DIR / "models" / "demo" / "progress.json"
    try:
        progress = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"demo_training": None}
    return {"demo_training": progress if progress.get("state") != "done" else None}
