"""Sending background work as a nudge (DESIGN.md, "Intent before messages").

Every piece of background work is a row whose state says what must happen; the Celery message
only wakes a worker up. So a send that fails (the broker is down or unreachable) is logged and
forgotten: the row still says what to do, and the sweeps re-send it once the broker is back.
Every portal sender goes through here; the broker timeouts that keep a failed send short are in
settings (CELERY_BROKER_CONNECTION_TIMEOUT, CELERY_TASK_PUBLISH_RETRY_POLICY).
"""

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
DEFAULT_QUEUE = "default"


def send(
    name: str, *, args: Sequence = (), queue: str = DEFAULT_QUEUE, headers: dict | None = None
) -> bool:
    """Send task `name` now; True when the broker took it. False, logged with the task's name
    and arguments (ids, never PHI), when it did not: the caller's row keeps the intent."""
    try:
        _app().send_task(name, args=list(args), queue=queue, headers=headers)
    except Exception as exc:  # kombu, redis and socket errors alike: a nudge never fails its caller
        log.warning(
            "could not send %s%s to the broker (%s: %s); the sweep re-sends it",
            name,
            tuple(args) if all(isinstance(a, int) for a in args) else "",
            type(exc).__name__,
            exc,
        )
        return False
    return True


def send_on_commit(
    name: str, *, args: Sequence = (), queue: str = DEFAULT_QUEUE, headers: dict | None = None
) -> None:
    """`send` once the current transaction commits (at once outside one), so that the worker
    finds the row the message is about."""
    transaction.on_commit(lambda: send(name, args=args, queue=queue, headers=headers))


def warm() -> threading.Thread:
    """Import the broker's client and connect, in a thread of its own, so that a short-lived
    process's first `send` does not wait for them: `manage.py ingest` sends its one message at
    the very end, when the 0.2 s this takes (redis-py's import, most of it) would be added to
    the command's time, where in a thread it overlaps the upload. Never fails: a broker that is
    down is `send`'s to log, and the thread (returned) ends within the broker timeouts."""
    thread = threading.Thread(target=_warm, name="broker-warm-up", daemon=True)
    thread.start()
    return thread


def _app() -> "Celery":
    """The Celery app, imported by the first send rather than when Django starts: a process
    that sends one message at its end (`manage.py ingest`) imports Celery in `warm`'s thread,
    while its workers are busy, instead of before its first file (60 ms)."""
    from portal.celery import app  # noqa: PLC0415

    return app


def _warm() -> None:
    try:
        with _app().producer_pool.acquire(block=True) as producer:
            producer.connection.default_channel  # noqa: B018 (connects: the pool keeps it)
    except Exception:  # noqa: BLE001, S110 (the send that needs the broker says it)
        pass
