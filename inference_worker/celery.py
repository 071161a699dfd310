"""The inference workers' Celery app: `celery -A inference_worker worker -Q inference`.

Configured from the environment alone (no Django): REDIS_URL (the broker shared with the
portal), INFERENCE_DATA_DIR (where the shared storage is mounted here; default PORTAL_DATA_DIR,
then ./var) and TASK_HARD_LIMIT_S (the same number the portal uses). The predict pipeline reads
INFERENCE_GPU_BATCH, INFERENCE_DECODE_WORKERS and INFERENCE_COMPILE (`predict.Settings`).
"""

import os
from pathlib import Path

from celery import Celery

from inference_worker import quiet_pydicom
from inference_worker.broker import transport_options

os.umask(0o077)  # heatmaps readable by the service user alone, as the portal's own files
# Before Celery sets up its logging: pydicom's messages (they quote paths) reach no log.
quiet_pydicom.install()

HARD_LIMIT_S = int(os.environ.get("TASK_HARD_LIMIT_S", 6 * 3600))
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
    broker_transport_options=transport_options(HARD_LIMIT_S),
    task_default_queue="inference",
)
