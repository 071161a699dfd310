"""Ingest: every interface (web page, REST, CLI, Celery task) comes through here.

One file at a time: read, check, age, de-identify, de-duplicate, write, record, in one
transaction per file, so a bad file leaves nothing behind and never stops the rest.
"""

import json
import logging
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from portal.celery import app as celery_app
from portal.ingest.archive import Item, Source, ZipLimits, count_items, iter_items
from portal.ingest.dicom import Limits
from portal.ingest.models import Image, Site, Upload, UploadFile
from portal.ingest.prepare import Prepared, Refused, prepare
from portal.predictions.services import prediction_job_create_for_upload

log = logging.getLogger(__name__)
PROCESS_TASK = "portal.ingest.upload_process"
DUPLICATE_REASON = "already stored for this site"
Outcome = UploadFile.Outcome


class IngestError(Exception):
    """A whole request that cannot be taken (not one bad file: those go in the report)."""


def site_create(*, slug: str, name: str = "") -> Site:
    return Site.objects.create(slug=slug, name=name or slug)


def upload_create(*, site: Site, source: str, user=None) -> Upload:
    return Upload.objects.create(site=site, source=source, created_by=user)


def _staging_dir(upload: Upload) -> Path:
    return settings.DATA_DIR / "staging" / str(upload.pk)


def upload_receive_files(*, upload: Upload, files: Iterable[tuple[str, UploadedFile]]) -> int:
    """Move received files (already streamed to disk by Django) into the upload's staging
    folder, keeping the name the uploader gave each one for the report."""
    if upload.submitted_at is not None or upload.status != Upload.Status.RECEIVING:
        raise IngestError(f"upload {upload.pk} was submitted; it takes no more files")
    staging = _staging_dir(upload)
    staging.mkdir(parents=True, exist_ok=True)
    received = 0
    with (staging / "manifest.jsonl").open("a") as manifest:
        for name, uploaded in files:
            fd, target = tempfile.mkstemp(prefix="f-", dir=staging)
            os.close(fd)
            if hasattr(uploaded, "temporary_file_path"):
                shutil.move(uploaded.temporary_file_path(), target)
            else:
                with open(target, "wb") as out:
                    for chunk in uploaded.chunks():
                        out.write(chunk)
            safe_name = (name or uploaded.name or "unnamed").replace("\\", "/").lstrip("/")
            manifest.write(json.dumps({"name": safe_name[:1000], "file": Path(target).name}))
            manifest.write("\n")
            received += 1
    Upload.objects.filter(pk=upload.pk).update(total_files=F("total_files") + received)
    return received


def upload_submit(*, upload: Upload) -> Upload:
    """Close the upload to new files and queue its processing on the `default` queue."""
    upload_id = upload.pk
    claimed = Upload.objects.filter(
        pk=upload_id, status=Upload.Status.RECEIVING, submitted_at__isnull=True
    ).update(submitted_at=timezone.now())
    if not claimed:
        raise IngestError(f"upload {upload_id} was already submitted")
    upload.refresh_from_db()
    transaction.on_commit(
        lambda: celery_app.send_task(PROCESS_TASK, args=[upload_id], queue="default")
    )
    return upload


def upload_process_staged(*, upload_id: int) -> Upload:
    """What the Celery task runs: ingest the staged files, then drop the staging folder."""
    upload = Upload.objects.select_related("site").get(pk=upload_id)
    if upload.status in (Upload.Status.DONE, Upload.Status.FAILED):
        return upload  # a redelivered task after completion does nothing
    staging = _staging_dir(upload)
    sources = []
    manifest = staging / "manifest.jsonl"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            entry = json.loads(line)
            sources.append(Source(path=staging / entry["file"], name=entry["name"]))
    upload = upload_process(upload=upload, sources=sources)
    shutil.rmtree(staging, ignore_errors=True)
    return upload


def _zip_limits() -> ZipLimits:
    cfg = settings.INGEST
    return ZipLimits(
        max_uncompressed_bytes=cfg["ZIP_MAX_UNCOMPRESSED_BYTES"],
        max_ratio=cfg["ZIP_MAX_RATIO"],
        max_entries=cfg["ZIP_MAX_ENTRIES"],
    )


def _image_limits() -> Limits:
    cfg = settings.INGEST
    return Limits(
        min_dimension=cfg["MIN_DIMENSION"],
        max_dimension=cfg["MAX_DIMENSION"],
        max_aspect_ratio=cfg["MAX_ASPECT_RATIO"],
    )


def upload_process(
    *,
    upload: Upload,
    sources: list[Source],
    on_total: Callable[[int], None] | None = None,
    on_file: Callable[[UploadFile], None] | None = None,
) -> Upload:
    """Ingest every file of `sources` into `upload`, one transaction per file.

    Reading and de-identifying run in worker processes when the upload is large enough;
    recording stays here, in upload order. Safe to run again after a crash: files already
    in the report are skipped.
    """
    zip_limits, limits = _zip_limits(), _image_limits()
    already = set(upload.files.values_list("name", flat=True)) if upload.processed_files else set()
    total = count_items(sources, zip_limits)
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING, started_at=timezone.now(), total_files=total
    )
    if on_total:
        on_total(total)
    key = upload.site.pseudonym_key.encode()
    tmp_dir = settings.DATA_DIR / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    pending: deque[tuple[Item, Future | None]] = deque()

    def finish_oldest() -> None:
        item, future = pending.popleft()
        try:
            outcome = _outcome(item, future)
            record = _store(upload=upload, name=item.name, prepared=outcome)
        finally:
            item.discard()
        if on_file:
            on_file(record)

    try:
        pool, workers = _executor(total - len(already))
        with pool:
            window = 8 * workers  # files read ahead of the recording, at most
            for item in iter_items(sources, zip_limits, tmp_dir):
                if item.name in already:
                    item.discard()
                    continue
                future = None
                if item.path is not None:
                    future = pool.submit(prepare, str(item.path), key, limits, str(tmp_dir))
                pending.append((item, future))
                while len(pending) > window:
                    finish_oldest()
            while pending:
                finish_oldest()
    except BaseException as exc:
        for item, future in pending:
            done_ok = future is not None and future.done() and future.exception() is None
            if done_ok and isinstance(result := future.result(), Prepared):
                Path(result.tmp_path).unlink(missing_ok=True)
            item.discard()
        log.exception("upload %s failed", upload.pk)
        Upload.objects.filter(pk=upload.pk).update(
            status=Upload.Status.FAILED,
            failure_reason=f"ingest stopped: {type(exc).__name__}",
            finished_at=timezone.now(),
        )
        raise
    with transaction.atomic():
        Upload.objects.filter(pk=upload.pk).update(
            status=Upload.Status.DONE, finished_at=timezone.now()
        )
        upload.refresh_from_db()
        if upload.accepted_count:
            prediction_job_create_for_upload(upload=upload)
    log.info(
        "upload %s done: %s accepted, %s duplicates, %s rejected",
        upload.pk,
        upload.accepted_count,
        upload.duplicate_count,
        upload.rejected_count,
    )
    return upload


def _outcome(item: Item, future: Future | None) -> Prepared | Refused:
    if future is None:
        return Refused(item.reason or "unreadable")
    try:
        return future.result()
    except BrokenExecutor:
        # TODO(issue 9): a worker process that dies on one file (a codec crash) breaks the
        # pool and stops the upload; it should cost only that file.
        raise
    except OSError:
        raise  # the server's disk, not the file: see `prepare`
    except Exception as exc:  # `prepare` refuses bad files itself; this is a last resort
        return Refused(f"the file could not be processed ({type(exc).__name__})")


class _InlineExecutor(Executor):
    """Runs each call at once: small uploads do not pay for starting worker processes."""

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _executor(files: int) -> tuple[Executor, int]:
    workers = settings.INGEST["WORKERS"]
    if workers <= 1 or files < settings.INGEST["PARALLEL_MIN_FILES"]:
        return _InlineExecutor(), 1
    # spawn, not fork: children must not inherit the parent's database connections.
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")), workers


_COUNTERS = {
    Outcome.ACCEPTED: "accepted_count",
    Outcome.DUPLICATE: "duplicate_count",
    Outcome.REJECTED: "rejected_count",
}


def _record(
    upload: Upload, name: str, outcome: str, reason: str = "", image: Image | None = None
) -> UploadFile:
    """Write one report line and move the counters, atomically (joining the caller's
    transaction if there is one)."""
    with transaction.atomic(savepoint=False):
        record = UploadFile.objects.create(
            upload=upload, name=name, outcome=outcome, reason=reason, image=image
        )
        counter = _COUNTERS[outcome]
        Upload.objects.filter(pk=upload.pk).update(
            processed_files=F("processed_files") + 1, **{counter: F(counter) + 1}
        )
    return record


def _store(*, upload: Upload, name: str, prepared: Prepared | Refused) -> UploadFile:
    """De-duplicate, then record the image and move its file into storage in one transaction."""
    if isinstance(prepared, Refused):
        return _record(upload, name, Outcome.REJECTED, prepared.reason)
    site = upload.site
    tmp = Path(prepared.tmp_path)
    try:
        image = Image(
            site=site,
            upload=upload,
            size_bytes=prepared.size_bytes,
            sha256=prepared.sha256,
            sop_instance_uid=prepared.ids.sop_instance_uid,
            study_instance_uid=prepared.ids.study_instance_uid,
            series_instance_uid=prepared.ids.series_instance_uid,
            patient_pseudonym=prepared.ids.patient_pseudonym,
            sex=prepared.sex,
            age_days=prepared.age.days,
            age_source=prepared.age.source,
            age_resolution_days=prepared.age.resolution_days,
            **prepared.acquisition,
        )
        image.file = f"images/{site.slug}/{image.uuid}.dcm"
        target = settings.DATA_DIR / image.file
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with transaction.atomic():
                image.save()
                record = _record(upload, name, Outcome.ACCEPTED, image=image)
                os.replace(tmp, target)
        except IntegrityError:
            # The unique (site, remapped SOPInstanceUID) constraint is the duplicate check.
            return _record(upload, name, Outcome.DUPLICATE, DUPLICATE_REASON)
        except DataError as exc:
            # A value the database refuses (out of range, not valid JSON) is this file's fault.
            target.unlink(missing_ok=True)
            reason = f"its attributes cannot be recorded ({type(exc).__name__})"
            return _record(upload, name, Outcome.REJECTED, reason)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return record
    finally:
        tmp.unlink(missing_ok=True)
