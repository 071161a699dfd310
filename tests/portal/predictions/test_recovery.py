"""Jobs that always end: dispatch in resumable chunks, and the sweep that re-dispatches a job
whose messages were lost (or fails it after the last round), against a real Redis and, in the
slow tests, real Celery workers."""

import json
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from portal.ingest.models import Image
from portal.predictions import dispatch, services, workers
from portal.predictions.models import PredictionJob
from tests.conftest import wait_for
from tests.portal import factories as f
from tests.portal.predictions.test_jobs import (
    ingest_phantoms,
    job_of,
    make_checkpoint,
    start_default_worker,
    wait_job,
)

QUEUES = ("default", "inference")


@pytest.fixture
def broker(redis_url, monkeypatch) -> redis.Redis:
    """The test Redis with empty queues; no worker answers inspect here, so its wait is short."""
    client = redis.Redis.from_url(redis_url)
    client.delete(*QUEUES)
    monkeypatch.setattr(workers, "INSPECT_TIMEOUT_S", 0.3)
    yield client
    client.delete(*QUEUES)


def queued(client: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def later(minutes: int = 11):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db
def test_dispatch_sends_one_chunk_per_run_and_resumes_after_the_cursor(broker, settings):
    settings.PREDICT_BATCH_SIZE = 2
    settings.PREDICT_DISPATCH_CHUNK = 2
    north = f.site("north")
    f.model_version()
    images = [f.image(north) for _ in range(9)]
    job = services.prediction_job_create(site=north)  # in a test transaction: nothing sent yet

    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=1) == 2
    sent = queued(broker, "inference")
    assert [m["headers"]["portal_job"] for m in sent] == [job.pk, job.pk]
    follow_up = queued(broker, "default")
    assert [m["headers"]["task"] for m in follow_up] == [services.DISPATCH_TASK]
    job.refresh_from_db()
    assert (job.batches, job.dispatch_cursor) == (2, images[3].pk)

    # the next run (or a rerun after a crash) goes on after the cursor
    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=1) == 2
    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=1) == 1
    job.refresh_from_db()
    assert (job.batches, job.dispatch_cursor) == (5, images[8].pk)
    assert len(queued(broker, "inference")) == 5
    assert len(queued(broker, "default")) == 2  # no follow-up after the last, short chunk
    # a task of an older round stops at once
    PredictionJob.objects.filter(pk=job.pk).update(dispatches=2)
    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=1) == 0


@pytest.mark.django_db
def test_the_sweep_leaves_a_job_whose_batches_wait_in_a_queue(broker):
    north = f.site("north")
    f.model_version()
    f.image(north)
    job = services.prediction_job_create(site=north)
    dispatch.prediction_job_dispatch(job_id=job.pk, round_=1)

    assert dispatch.prediction_jobs_sweep(now=later()) == {}
    assert PredictionJob.objects.get(pk=job.pk).dispatches == 1


@pytest.mark.django_db
def test_the_sweep_redispatches_a_stalled_job_then_fails_it_after_the_last_round(broker, settings):
    settings.JOB_MAX_DISPATCHES = 2
    north = f.site("north")
    f.model_version()
    f.image(north)
    job = services.prediction_job_create(site=north)
    dispatch.prediction_job_dispatch(job_id=job.pk, round_=1)
    broker.delete("inference")  # the message is lost

    assert dispatch.prediction_jobs_sweep(now=later(11)) == {job.pk: "redispatched"}
    job.refresh_from_db()
    assert (job.state, job.dispatches, job.dispatch_cursor) == ("queued", 2, 0)
    broker.delete("default")  # and lost again, before the dispatch task ran

    assert dispatch.prediction_jobs_sweep(now=later(15)) == {}  # not stalled for long enough
    assert dispatch.prediction_jobs_sweep(now=later(22)) == {job.pk: "failed"}
    job.refresh_from_db()
    assert job.state == "failed"
    assert "after 2 dispatches" in job.failure_reason
    assert "1 images unanswered" in job.failure_reason
    assert job.finished_at is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_messages_were_lost_is_found_by_the_sweep_and_finishes(
    site, start_worker, tmp_path, redis_url
):
    client = redis.Redis.from_url(redis_url)
    start_default_worker(start_worker, batch_size=3)
    make_checkpoint(tmp_path / "ckpt")
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    # The model is active before the upload ends, so ingest's message makes the one job (a job
    # made by hand could race the message's own job into the sweep).
    job = job_of(ingest_phantoms(site, tmp_path / "phantoms", 7))
    wait_for(lambda: PredictionJob.objects.get(pk=job.pk).batches == 3, what="the dispatch task")
    client.delete("inference")  # lost messages: no inference worker will ever see them

    assert dispatch.prediction_jobs_sweep(now=later()) == {job.pk: "redispatched"}
    start_worker("inference", "inference", app="inference_worker")
    job = wait_job(job)

    assert (job.state, job.done_count, job.failed_count, job.dispatches) == ("done", 7, 0, 2)
    assert job.batches == 6
    assert Image.objects.filter(predictions__error="").count() == 7


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_sweep_leaves_a_job_whose_batch_a_worker_is_running(site, start_worker, tmp_path):
    start_default_worker(start_worker, batch_size=12)
    make_checkpoint(tmp_path / "ckpt", width=32, size=256)  # slow enough to be seen running
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    start_worker("inference", "inference", app="inference_worker")
    job = job_of(ingest_phantoms(site, tmp_path / "phantoms", 12))

    def held() -> bool:
        assert PredictionJob.objects.get(pk=job.pk).finished_at is None, "ended before seen"
        return job.pk in workers.jobs_held_by_workers()

    wait_for(held, timeout_s=120, what="the batch running")
    assert dispatch.prediction_jobs_sweep(now=later()) == {}
    job = wait_job(job)
    assert (job.state, job.done_count, job.dispatches) == ("done", 12, 1)
