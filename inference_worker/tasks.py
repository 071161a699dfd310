"""Thin Celery tasks on the `inference` queue. The portal sends batches by task name; the
answer goes back by task name to the portal's `default` queue. Nothing here touches a database.
Every batch is answered: `run_batch` turns whatever fails into per-image failures, and a batch
that killed its worker is split and, image by image, failed after MAX_ATTEMPTS.
"""

import functools
import os
import socket

import redis
import torch
from celery.signals import worker_process_init

from inference_worker import finetune
from inference_worker.celery import DATA_DIR, app
from inference_worker.predict import Settings, failure_answer, run_batch

PREDICT_TASK = "inference_worker.predict_batch"
STORE_TASK = "portal.predictions.store_results"
FINETUNE_TASK = "inference_worker.finetune"
TRAINING_RESULT_TASK = "portal.learning.training_result"
MAX_ATTEMPTS = 3
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# INFERENCE_GPU_BATCH, INFERENCE_DECODE_WORKERS (threads here), INFERENCE_COMPILE.
SETTINGS = Settings.from_env(processes=False)


@functools.lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url)


def _first_delivery(task_id: str) -> bool:
    """False when this message was delivered before: its worker died while running it."""
    return bool(_redis().set(f"inference:started:{task_id}", 1, nx=True, ex=7 * 86400))


@worker_process_init.connect
def _set_threads(**_kwargs) -> None:
    """Once per worker process, not per batch."""
    torch.set_num_threads(int(os.environ.get("INFERENCE_THREADS", os.cpu_count() or 1)))


@app.task(name=PREDICT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def predict_batch(self, payload: dict) -> None:
    if not _first_delivery(self.request.id):
        _after_a_crash(payload)
        return
    answer = run_batch(payload, DATA_DIR, SETTINGS)
    app.send_task(STORE_TASK, args=[{**answer, "worker": WORKER}], queue="default")


def _after_a_crash(payload: dict) -> None:
    """A batch that killed its worker is split into single images, and an image that keeps
    killing workers fails after MAX_ATTEMPTS instead of looping."""
    attempt = payload.get("attempt", 1) + 1
    images = payload["images"]
    if len(images) == 1 and attempt > MAX_ATTEMPTS:
        reason = f"the worker stopped while predicting it, {MAX_ATTEMPTS} times"
        answer = {**failure_answer(payload, reason), "worker": WORKER}
        app.send_task(STORE_TASK, args=[answer], queue="default")
        return
    for image in images:
        single = {**payload, "images": [image], "attempt": attempt}
        app.send_task(PREDICT_TASK, args=[single], queue="inference")


@app.task(name=FINETUNE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def finetune_job(self, payload: dict) -> None:
    """Fine-tune or recalibrate (`finetune.run`); a job whose worker died mid-way fails with
    that reason instead of training again and again."""
    if _first_delivery(self.request.id):
        answer = finetune.run(payload, DATA_DIR)
    else:
        answer = {"job": payload["job"], "error": "the worker stopped while training"}
    app.send_task(TRAINING_RESULT_TASK, args=[{**answer, "worker": WORKER}], queue="default")
