"""The inference workers' Celery app: `celery -A inference_worker worker -Q inference`.

Configured from the environment alone (no Django): REDIS_URL (the broker shared with the
portal), INFERENCE_DATA_DIR (where the shared storage is mounted here; default PORTAL_DATA_DIR,
then ./var) and TASK_HARD_LIMIT_S (the same number the portal uses).
"""

import os
from pathlib import Path

from celery import Celery

HARD_LIMIT_S = int(os.environ.get("TASK_HARD_LIMIT_S", 6 * 3600))
VISIBILITY_S = int(HARD_LIMIT_S * 1.1)
DATA_DIR = Path(
    os.environ.get("INFERENCE_DATA_DIR") or os.environ.get("PORTAL_DATA_DIR") or "var"
).resolve()

app = Celery("inference_worker", include=["inference_worker.tasks"])
app.conf.update(
    broker_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=HARD_LIMIT_S,
    task_soft_time_limit=int(HARD_LIMIT_S * 0.9),
    # The same derivation as the portal's settings: they share the broker.
    broker_transport_options={
        "visibility_timeout": VISIBILITY_S,
        "unacked_restore_interval": min(10, max(1, VISIBILITY_S // 10)),
        "unacked_restore_throttle": 1 if VISIBILITY_S < 600 else 10,
        # A worker killed while sweeping holds the sweep's lock until it expires.
        "unacked_mutex_expire": min(300, VISIBILITY_S),
    },
    task_default_queue="inference",
)
