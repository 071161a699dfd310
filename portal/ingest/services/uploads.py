"""An upload's life: its site, the files it receives, its submit, its end by failure or expiry."""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.celery import app as celery_app
from portal.ingest import staging
from portal.ingest.models import Site, Upload
from portal.ingest.selectors import upload_expiry, upload_last_activity
from portal.ingest.services.store import _counters_refresh

# One logger for the package, whichever of its modules logs.
log = logging.getLogger(__package__)

PROCESS_TASK = "portal.ingest.upload_process"
EXPIRE_TASK = "portal.ingest.upload_expire_stale"


class IngestError(Exception):
    """A whole request that cannot be taken (not one bad file: those go in the report)."""


def site_create(*, slug: str, name: str = "") -> Site:
    return Site.objects.create(slug=slug, name=name or slug)


def upload_create(*, site: Site, source: str, user=None) -> Upload:
    return Upload.objects.create(site=site, source=source, created_by=user)


def _lock(upload: Upload) -> Upload:
    """The upload's row, locked until the caller's transaction ends: every change of state
    reads the state it starts from under this lock."""
    return Upload.objects.select_for_update(no_key=True).get(pk=upload.pk)


def _closed(upload: Upload) -> IngestError:
    if upload.status == Upload.Status.EXPIRED:
        return IngestError(
            f"upload {upload.pk} expired (left open without a submit) and its files were "
            "deleted; start a new upload"
        )
    return IngestError(
        f"upload {upload.pk} was submitted ({upload.status}); it takes no more files"
    )


def upload_receive_files(*, upload: Upload, files: Sequence[tuple[str, UploadedFile]]) -> Upload:
    """Stage a batch of received files (already on disk, in FILE_UPLOAD_TEMP_DIR) as the
    upload's next files; refused once the upload is submitted or expired. Returns the upload
    as it is after the batch."""
    files = list(files)
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status != Upload.Status.RECEIVING:
            raise _closed(locked)
        named = [(staging.clean_name(name or f.name or ""), f) for name, f in files]
        staging.stage(locked.uuid.hex, locked.received_files + 1, named)
        Upload.objects.filter(pk=locked.pk).update(
            received_files=F("received_files") + len(files),
            total_files=F("total_files") + len(files),
            last_received_at=timezone.now(),
        )
        locked.refresh_from_db()
    return locked


def upload_submit(*, upload: Upload) -> Upload:
    """Close the upload to new files and queue its processing on the `default` queue. A
    second submit changes nothing and queues nothing; an expired upload cannot be submitted.
    Returns the upload in its state after the submit."""
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status == Upload.Status.EXPIRED:
            raise _closed(locked)
        if locked.status == Upload.Status.RECEIVING:
            Upload.objects.filter(pk=locked.pk).update(
                status=Upload.Status.SUBMITTED, submitted_at=timezone.now()
            )
            upload_id = locked.pk
            transaction.on_commit(
                lambda: celery_app.send_task(PROCESS_TASK, args=[upload_id], queue="default")
            )
            locked.refresh_from_db()
    return locked


def _fail(upload: Upload, reason: str) -> Upload:
    """End an unfinished upload as failed and delete whatever of it is staged."""
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status in _OPEN:
            Upload.objects.filter(pk=locked.pk).update(
                status=Upload.Status.FAILED, failure_reason=reason, finished_at=timezone.now()
            )
        _counters_refresh(locked.pk)
    staging.sweep(locked.uuid.hex)
    locked.refresh_from_db()
    return locked


def upload_expire(*, upload: Upload, now: datetime | None = None) -> bool:
    """Expire an upload left open past UPLOAD_EXPIRY_HOURS since its last batch, and delete
    its staged files. False (and nothing done) when it is no longer open or was just used."""
    cutoff = (now or timezone.now()) - upload_expiry()
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status != Upload.Status.RECEIVING or upload_last_activity(locked) >= cutoff:
            return False
        Upload.objects.filter(pk=locked.pk).update(
            status=Upload.Status.EXPIRED,
            failure_reason=f"left open for more than {_hours(upload_expiry())} without a submit",
            finished_at=timezone.now(),
        )
    staging.sweep(locked.uuid.hex)
    log.info("upload %s expired; its staged files were deleted", locked.pk)
    return True


def upload_expire_stale(*, now: datetime | None = None) -> int:
    """What the periodic task runs: expire every upload left open too long, fail those
    submitted that long ago whose processing never started (a lost message), and delete
    staging folders and incoming parts that belong to no open upload. Returns how many
    uploads it ended."""
    now = now or timezone.now()
    cutoff = now - upload_expiry()
    ended = 0
    stale = Upload.objects.filter(status=Upload.Status.RECEIVING).filter(
        Q(last_received_at__lt=cutoff) | Q(last_received_at__isnull=True, created_at__lt=cutoff)
    )
    for upload in stale.only("pk"):
        ended += upload_expire(upload=upload, now=now)
    never_started = Upload.objects.filter(
        status=Upload.Status.SUBMITTED, submitted_at__lt=cutoff
    ).only("pk", "uuid")
    for upload in never_started:
        _fail(upload, f"processing did not start within {_hours(upload_expiry())} of the submit")
        ended += 1
    open_tokens = [
        u.hex for u in Upload.objects.filter(status__in=_OPEN).values_list("uuid", flat=True)
    ]
    staging.sweep_orphans(keep=open_tokens, older_than_s=upload_expiry().total_seconds())
    return ended


_OPEN = (Upload.Status.RECEIVING, Upload.Status.SUBMITTED, Upload.Status.PROCESSING)


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g} h"
