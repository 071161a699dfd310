"""An upload's life: its site, the files it receives, its submit, its end by failure or expiry."""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core import outbox
from portal.ingest import staging
from portal.ingest.models import Site, Upload
from portal.ingest.selectors import upload_expiry, upload_last_activity
from portal.ingest.services.store import _counters_refresh

# One logger for the package, whichever of its modules logs.
log = logging.getLogger(__package__)

PROCESS_TASK = "portal.ingest.upload_process"
EXPIRE_TASK = "portal.ingest.upload_expire_stale"
RESEND_TASK = "portal.ingest.resend"
# Sent (by name, once the upload is done and committed) to the predictions app above, whose task
# queues the upload's images for the active model: ingest never imports predictions (the layers
# contract in pyproject.toml). A send the broker loses is made good by predictions' sweep.
UPLOAD_DONE_TASK = "portal.predictions.upload_done"


class IngestError(Exception):
    """A whole request that cannot be taken (not one bad file: those go in the report)."""


# What an admin may change on a site (the pseudonym key never changes: it would split every
# patient's pseudonym in two).
SITE_FIELDS = ("slug", "name", "double_reading", "blind_reading", "keep_file_names")


def _site_state(site: Site) -> dict:
    return {field: getattr(site, field) for field in SITE_FIELDS}


def site_create(*, slug: str, name: str = "", user=None, **options) -> Site:
    with transaction.atomic():
        site = Site.objects.create(slug=slug, name=name or slug, **options)
        audit_record(
            actor=user,
            action=AuditAction.SITE_CREATE,
            site_id=site.pk,
            target=slug,
            after=_site_state(site),
        )
    return site


def site_change(*, site: Site, user, **values) -> Site:
    """Change a site's settings (`SITE_FIELDS`), with what changed on the record; a change of
    nothing records nothing."""
    unknown = set(values) - set(SITE_FIELDS)
    if unknown:
        raise IngestError(f"site settings {', '.join(sorted(unknown))} cannot be changed")
    with transaction.atomic():
        locked = Site.objects.select_for_update().get(pk=site.pk)
        changed = [k for k, v in values.items() if getattr(locked, k) != v]
        if changed:
            before = {k: getattr(locked, k) for k in changed}
            for key in changed:
                setattr(locked, key, values[key])
            locked.save(update_fields=changed)
            audit_record(
                actor=user,
                action=AuditAction.SITE_CHANGE,
                site_id=locked.pk,
                target=locked.slug,
                before=before,
                after={k: values[k] for k in changed},
            )
    return locked


def _upload_audit(upload: Upload, user, action: AuditAction, **change) -> None:
    """One event on an upload (`change`: its `before` and `after`), in the caller's transaction."""
    audit_record(
        actor=user, action=action, site_id=upload.site_id, target=f"upload {upload.pk}", **change
    )


def upload_create(*, site: Site, source: str, user=None) -> Upload:
    with transaction.atomic():
        upload = Upload.objects.create(site=site, source=source, created_by=user)
        _upload_audit(
            upload, user, AuditAction.UPLOAD_CREATE, after={"upload": upload.pk, "source": source}
        )
    return upload


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


def upload_receive_files(
    *, upload: Upload, files: Sequence[tuple[str, UploadedFile]], user=None
) -> Upload:
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
        _upload_audit(
            locked,
            user,
            AuditAction.UPLOAD_FILES,
            before={"received_files": locked.received_files},
            after={"received_files": locked.received_files + len(files)},
        )
        locked.refresh_from_db()
    return locked


def upload_submit(*, upload: Upload, user=None) -> Upload:
    """Close the upload to new files and queue its processing on the `default` queue. The
    `submitted` state is the intent: the message is only a nudge, so a broker that is down
    delays the processing (the sweep sends it again) and a second submit of a submitted
    upload sends it again too; the task processes it once. An expired upload cannot be
    submitted. Returns the upload in its state after the submit."""
    with transaction.atomic():
        locked = _lock(upload)
        if locked.status == Upload.Status.EXPIRED:
            raise _closed(locked)
        now = timezone.now()
        if locked.status == Upload.Status.RECEIVING:
            Upload.objects.filter(pk=locked.pk).update(
                status=Upload.Status.SUBMITTED, submitted_at=now, sent_at=now
            )
            outbox.send_on_commit(PROCESS_TASK, args=[locked.pk])
            _upload_audit(
                locked,
                user,
                AuditAction.UPLOAD_SUBMIT,
                before={"status": locked.status},
                after={"status": Upload.Status.SUBMITTED, "files": locked.total_files},
            )
            locked.refresh_from_db()
        elif locked.status == Upload.Status.SUBMITTED:
            _send(locked, now)
    return locked


def _send(upload: Upload, now: datetime) -> None:
    Upload.objects.filter(pk=upload.pk).update(sent_at=now)
    outbox.send_on_commit(PROCESS_TASK, args=[upload.pk])


def upload_resend(*, sent_before: datetime | None = None) -> int:
    """Send again the processing of every upload still `submitted` whose last send is older
    than `sent_before` (default: RESEND_AFTER_S ago), as beat does every minute and
    `run_portal` at start. Returns how many were sent."""
    now = timezone.now()
    cutoff = sent_before or now - timedelta(seconds=settings.RESEND_AFTER_S)
    waiting = Upload.objects.filter(status=Upload.Status.SUBMITTED).filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True)
    )
    sent = 0
    for upload_id in waiting.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            locked = Upload.objects.select_for_update(no_key=True).filter(pk=upload_id).first()
            if locked is None or locked.status != Upload.Status.SUBMITTED:
                continue  # taken up since the query
            _send(locked, now)
            sent += 1
    return sent


def upload_claim(*, upload_id: int, redelivered: bool) -> Upload | None:
    """Take a submitted upload for processing (it becomes `processing`); None when this
    message has nothing to do: the upload ended, or another task holds it (a message sent
    again while the first one runs). A message the broker hands back (`redelivered`: its
    worker died) resumes a processing upload."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update(no_key=True).get(pk=upload_id)
        if locked.status == Upload.Status.SUBMITTED:
            Upload.objects.filter(pk=upload_id).update(
                status=Upload.Status.PROCESSING, started_at=timezone.now()
            )
            locked.refresh_from_db()
            return locked
        if locked.status == Upload.Status.PROCESSING and redelivered:
            return locked
    log.info("upload %s is %s; this message has nothing to do", upload_id, locked.status)
    return None


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
    submitted that long ago whose processing never started (no worker took it although the
    sweep kept sending it: identified files do not wait in staging forever), and delete
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
