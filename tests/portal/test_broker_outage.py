"""Nothing lost when the broker is down (issue 15): an upload, an export and a report asked for
while Redis is stopped answer as usual, and finish once when it is back, sent again by the
sweeps beat runs, by a resubmit or retry, and by `run_portal` at start."""

import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from portal.celery import app as celery_app
from portal.core import outbox
from portal.core.processes import free_port, local_redis
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.services import PROCESS_TASK, UPLOAD_DONE_TASK, upload_create, upload_process
from portal.predictions import dispatch, uploads, workers
from portal.predictions import services as predictions
from portal.predictions.models import PredictionJob
from portal.reports.models import Report
from portal.validation.exports import EXPORT_TASK
from portal.validation.models import ValidationExport
from tests.conftest import Worker, _database_url, run_portal, wait_for
from tests.dicom_files import make_dicom
from tests.portal import factories as f
from tests.portal.validation.test_transfer import build_world

pytestmark = pytest.mark.django_db(transaction=True)


class Broker:
    """A Redis of this test's own on a fixed port, which the test stops and starts again
    (without persistence: what it held is gone, as in an outage that loses messages)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._running: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._running = contextlib.ExitStack()
        self._running.enter_context(local_redis(self.folder, port=self.port))

    def stop(self) -> None:
        if self._running is not None:
            self._running.close()
            self._running = None

    def messages(self, queue: str = "default") -> list[tuple[str, list]]:
        """(task name, arguments) of every message waiting in `queue` (newest first)."""
        raw = redis.Redis.from_url(self.url).lrange(queue, 0, -1)
        found = []
        for message in map(json.loads, raw):
            body = message["body"]
            if message["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            found.append((message["headers"]["task"], json.loads(body)[0]))
        return found


def _point_celery_at(url: str) -> None:
    """This process sends to `url`: Celery keeps the connection and producer pools it made for
    the session's Redis for the app's life, so they are dropped with the old address."""
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path: Path, redis_url: str) -> Iterator[Broker]:
    own = Broker(tmp_path / "outage-redis")
    own.start()
    _point_celery_at(own.url)
    yield own
    own.stop()
    _point_celery_at(redis_url)


@pytest.fixture
def world(tmp_path: Path):
    """A frozen set of real DICOM files, and a model that has predicted every one of them."""
    world = build_world(tmp_path)
    model = f.model_version("m1")
    for item in world.version.items.select_related("image"):
        f.prediction(item.image, model, age_days=item.curated_age_days + 30)
    return world


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _upload_files(tmp_path: Path) -> dict:
    paths = [make_dicom(tmp_path / "new" / f"{n}.dcm", seed=100 + n) for n in range(2)]
    return {"files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths]}


EXPORT_URL = "/api/validation-sets/cxr-val/versions/1/export/"
REPORT = {"validation_set": "cxr-val", "model": "m1"}


def _ask_for_all_three(client: APIClient, tmp_path: Path) -> tuple[int, int, int]:
    """An upload (submitted twice), an export (asked twice) and a report, each answering its
    usual JSON; returns their ids."""
    created = client.post("/api/sites/north/uploads/", _upload_files(tmp_path), format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "submitted"
    upload_id = created.json()["id"]
    again = client.post(f"/api/uploads/{upload_id}/submit/")
    assert (again.status_code, again.json()["status"]) == (202, "submitted")

    exported = client.post(EXPORT_URL)
    assert exported.status_code == 202, exported.content
    assert exported.json()["state"] == "queued"
    retried = client.post(EXPORT_URL)
    assert (retried.status_code, retried.json()["id"]) == (202, exported.json()["id"])

    reported = client.post("/api/reports/", REPORT, format="json")
    assert reported.status_code == 202, reported.content
    assert reported.json()["state"] == "queued"
    return upload_id, exported.json()["id"], reported.json()["id"]


@pytest.mark.slow  # real workers, Redis stopped and started again
def test_work_asked_for_while_redis_is_down_finishes_once_when_it_is_back(
    broker, world, tmp_path, data_dir
):
    client = _api(world.lead)
    broker.stop()
    upload_id, export_id, report_id = _ask_for_all_three(client, tmp_path)
    assert Upload.objects.get(pk=upload_id).status == "submitted"

    broker.start()
    assert broker.messages() == []  # everything sent during the outage is lost
    worker = Worker(
        redis_url=broker.url,
        data_dir=data_dir,
        queues="default",
        name="default",
        pool="threads",
        env={"PORTAL_RESEND_AFTER_SECONDS": "0"},
    )
    try:
        # What beat sends every minute, twice: the second round finds nothing new to do, or
        # sends again what the first has not finished (each task does its work once).
        for _ in range(2):
            for entry in settings.CELERY_BEAT_SCHEDULE.values():
                assert outbox.send(entry["task"])

        def finished() -> bool:
            return (
                Upload.objects.get(pk=upload_id).status in ("done", "failed")
                and ValidationExport.objects.get(pk=export_id).state in ("done", "failed")
                and Report.objects.get(pk=report_id).state in ("done", "failed")
            )

        wait_for(finished, timeout_s=120, what="the upload, the export and the report")
        # Asked for again once it is all done: nothing is built twice.
        assert client.post(f"/api/uploads/{upload_id}/submit/").status_code == 200
        assert client.post(EXPORT_URL).json()["id"] == export_id
        wait_for(lambda: broker.messages() == [], what="the last messages to be taken")
    finally:
        worker.stop()

    upload = Upload.objects.get(pk=upload_id)
    assert (upload.status, upload.accepted_count, upload.processed_files) == ("done", 2, 2)
    assert Image.objects.filter(upload=upload).count() == 2
    assert UploadFile.objects.filter(upload=upload).count() == 2
    assert not (settings.STAGING_DIR / upload.uuid.hex).exists()

    export = ValidationExport.objects.get()
    assert (export.pk, export.state, export.failure_reason) == (export_id, "done", "")
    assert [p.name for p in (data_dir / "exports").iterdir()] == ["cxr-val-v1.zip"]

    report = Report.objects.get()
    assert (report.pk, report.state, report.failure_reason) == (report_id, "done", "")
    assert report.result["overall"]["n"] == world.version.item_count


def test_a_resubmit_and_an_export_retry_send_again_what_the_outage_lost(broker, world, tmp_path):
    client = _api(world.lead)
    broker.stop()
    upload_id, export_id, _ = _ask_for_all_three(client, tmp_path)
    broker.start()
    assert broker.messages() == []

    assert client.post(f"/api/uploads/{upload_id}/submit/").status_code == 202
    assert client.post(EXPORT_URL).json()["id"] == export_id

    assert sorted(broker.messages()) == [(PROCESS_TASK, [upload_id]), (EXPORT_TASK, [export_id])]


def test_a_prediction_job_dispatched_while_redis_is_down_keeps_its_place_and_is_sent_later(
    broker, settings, monkeypatch
):
    monkeypatch.setattr(workers, "INSPECT_TIMEOUT_S", 0.3)  # no worker answers here
    north = f.site("north")
    f.model_version()
    for _ in range(3):
        f.image(north)
    broker.stop()
    job = predictions.prediction_job_create(site=north)  # its dispatch is lost

    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=1) == 0
    job.refresh_from_db()
    assert (job.state, job.batches, job.dispatch_cursor) == ("queued", 0, 0)

    broker.start()
    later = timezone.now() + timedelta(minutes=settings.JOB_STALL_MINUTES + 1)
    assert dispatch.prediction_jobs_sweep(now=later) == {job.pk: "redispatched"}
    assert broker.messages() == [(predictions.DISPATCH_TASK, [job.pk, 2])]
    assert dispatch.prediction_job_dispatch(job_id=job.pk, round_=2) == 1
    assert len(broker.messages("inference")) == 1


def _ingest_two(site, folder: Path) -> Upload:
    """Two DICOM files ingested in this process (its commits send what they send)."""
    for n in range(2):
        make_dicom(folder / f"{n}.dcm", seed=200 + n)
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI), sources=[Source.given(folder)]
    )
    assert (upload.status, upload.accepted_count) == ("done", 2)
    return upload


def test_an_upload_done_while_redis_is_down_gets_its_prediction_job_from_the_sweep(
    broker, settings, tmp_path
):
    """Ingest hands a done upload to predictions by task name after commit; when the broker
    loses that message, predictions' sweep finds the done upload without a job and makes it,
    once, whatever comes late."""
    north = f.site("north")
    f.model_version()
    broker.stop()
    upload = _ingest_two(north, tmp_path / "in")  # its UPLOAD_DONE_TASK is lost
    assert not PredictionJob.objects.filter(upload=upload).exists()
    broker.start()

    # A message may still be on its way for RESEND_AFTER_S: the sweep leaves the upload alone.
    assert uploads.uploads_without_job() == []
    later = timezone.now() + timedelta(seconds=settings.RESEND_AFTER_S + 1)
    assert uploads.uploads_without_job(finished_before=later) == [upload.pk]
    assert uploads.upload_jobs_recover(finished_before=later) == 1

    job = PredictionJob.objects.get(upload=upload)
    assert (job.total, job.state) == (2, "queued")
    assert broker.messages() == [(predictions.DISPATCH_TASK, [job.pk, 1])]
    # Nothing twice: the sweep again, and the lost message arriving after all.
    assert uploads.upload_jobs_recover(finished_before=later) == 0
    assert uploads.upload_done(upload_id=upload.pk) is None
    assert PredictionJob.objects.filter(upload=upload).count() == 1


def test_ingest_sends_the_done_upload_by_name_and_the_sweep_leaves_uploads_of_no_model(
    broker, settings, tmp_path
):
    """The message names the predictions task (ingest imports nothing of predictions); an
    upload done while no model was active gets no job, then or once a model is registered."""
    north = f.site("north")
    upload = _ingest_two(north, tmp_path / "in")
    assert broker.messages() == [(UPLOAD_DONE_TASK, [upload.pk])]
    assert uploads.upload_done(upload_id=upload.pk) is None  # no active model

    f.model_version()
    later = timezone.now() + timedelta(seconds=settings.RESEND_AFTER_S + 1)
    assert uploads.upload_jobs_recover(finished_before=later) == 0
    assert uploads.upload_done(upload_id=upload.pk) is None  # its message, delivered late
    assert not PredictionJob.objects.exists()


@pytest.mark.slow
def test_run_portal_sends_at_start_the_work_a_broker_outage_left_waiting(
    broker, world, tmp_path, data_dir
):
    client = _api(world.lead)
    broker.stop()
    upload_id, export_id, report_id = _ask_for_all_three(client, tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PORTAL_STAGING_DIR")}
    env.update(
        PORTAL_DATA_DIR=str(data_dir),
        DATABASE_URL=_database_url(),
        # Beat's sweep would send them only an hour after their last send: what starts
        # them here is run_portal's start.
        PORTAL_RESEND_AFTER_SECONDS="3600",
    )
    proc = run_portal(port, env)
    try:

        def finished() -> bool:
            return (
                Upload.objects.get(pk=upload_id).status == "done"
                and ValidationExport.objects.get(pk=export_id).state == "done"
                and Report.objects.get(pk=report_id).state == "done"
            )

        wait_for(finished, timeout_s=120, what="the work to finish after run_portal's start")
    finally:
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=90)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            # Its children hold the output pipe open: they go too, or reading it never ends.
            proc.kill()
            for child in family:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            output = proc.communicate(timeout=30)[0].decode(errors="replace")
        print(output[-5000:])
    assert "Waiting work sent again: 1 uploads, 1 exports, 1 reports" in output


def test_warming_the_broker_connection_never_fails_and_the_message_after_it_arrives(broker, caplog):
    """`manage.py ingest` connects while its workers are busy (`outbox.warm`): with the broker
    down the warm-up ends quietly within the timeouts, and the send after it says so; with
    the broker up, the connection it made carries the message."""
    broker.stop()
    thread = outbox.warm()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert outbox.send("portal.test.nudge", args=[1]) is False
    broker.start()
    _point_celery_at(broker.url)

    outbox.warm().join(timeout=30)
    assert outbox.send("portal.test.nudge", args=[2]) is True
    assert broker.messages() == [("portal.test.nudge", [2])]
