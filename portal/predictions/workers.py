"""Which jobs the broker and the workers still hold: read from Celery's inspect (tasks active
or reserved on any worker) and from the Redis queues (messages waiting), so that the sweep only
re-dispatches jobs whose messages were lost or whose worker died."""

import base64
import json
import logging

import redis

from portal.celery import app as celery_app
from portal.predictions.services import (
    DEFAULT_QUEUE,
    DISPATCH_TASK,
    INFERENCE_QUEUE,
    JOB_HEADER,
    PREDICT_TASK,
    STORE_TASK,
)

log = logging.getLogger(__name__)
INSPECT_TIMEOUT_S = 2.0
# kombu's Redis transport keeps a queue's priorities in lists named queue + this + step.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)
_SCAN_CHUNK = 500


def job_of_task(name: str, args) -> int | None:
    """The job a portal or inference task belongs to, from its arguments."""
    if not isinstance(args, list | tuple) or not args:
        return None
    first = args[0]
    if name == DISPATCH_TASK and isinstance(first, int):
        return first
    if name in (PREDICT_TASK, STORE_TASK) and isinstance(first, dict):
        job = first.get("job")
        return job if isinstance(job, int) else None
    return None


def _job_of_message(raw: bytes) -> int | None:
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        if isinstance(headers.get(JOB_HEADER), int):
            return headers[JOB_HEADER]
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return job_of_task(headers.get("task", ""), args)
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def jobs_waiting_in_queues() -> set[int]:
    """Jobs with a message waiting in the `inference` or `default` queue."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    jobs: set[int] = set()
    for queue in (INFERENCE_QUEUE, DEFAULT_QUEUE):
        keys = [queue] + [f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS]
        for key in keys:
            length = client.llen(key)
            for start in range(0, length, _SCAN_CHUNK):
                for raw in client.lrange(key, start, start + _SCAN_CHUNK - 1):
                    if (job := _job_of_message(raw)) is not None:
                        jobs.add(job)
    return jobs


def jobs_held_by_workers() -> set[int]:
    """Jobs with a task active or reserved on any worker that answers within the timeout."""
    inspect = celery_app.control.inspect(timeout=INSPECT_TIMEOUT_S)
    jobs: set[int] = set()
    for reply in (inspect.active(), inspect.reserved()):
        for tasks in (reply or {}).values():
            for task in tasks:
                if (job := job_of_task(task.get("name", ""), task.get("args"))) is not None:
                    jobs.add(job)
    return jobs


def jobs_in_flight() -> set[int]:
    """The queues first, then the workers: a message that moves from one to the other between
    the two looks is still seen."""
    return jobs_waiting_in_queues() | jobs_held_by_workers()
