"""Reads for the ingest area: the upload status and report that REST, CLI and web page show.

A report line names its file by position (`#3`, `#3/2` for entry 2 of an archive) and by the
uploader's name only where the site keeps names (`Site.keep_file_names`)."""

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from portal.accounts.selectors import site_scope
from portal.ingest.models import Site, Upload, UploadFile

# The report's groups, as `ingest --json` and the API's `outcome` filter name them.
OUTCOME_GROUPS = {
    "accepted": UploadFile.Outcome.ACCEPTED,
    "duplicates": UploadFile.Outcome.DUPLICATE,
    "rejected": UploadFile.Outcome.REJECTED,
}


def site_list(*, user, roles: Iterable[str] | None = None) -> QuerySet[Site]:
    """The user's sites (where they hold one of `roles`, any role when None)."""
    return Site.objects.filter(site_scope(user=user, roles=roles, field="pk"))


def upload_list(*, user, site: str | None = None, status: str | None = None) -> QuerySet[Upload]:
    uploads = Upload.objects.filter(site_scope(user=user)).select_related("site")
    if site:
        uploads = uploads.filter(site__slug=site)
    if status:
        uploads = uploads.filter(status=status)
    return uploads


def upload_expiry() -> timedelta:
    """How long an open upload waits for its next batch or its submit."""
    return timedelta(hours=settings.INGEST["UPLOAD_EXPIRY_HOURS"])


def upload_last_activity(upload: Upload) -> datetime:
    return upload.last_received_at or upload.created_at


def upload_expires_at(*, upload: Upload) -> datetime | None:
    """When an open upload expires if no batch comes first (None once it is submitted)."""
    if upload.status != Upload.Status.RECEIVING:
        return None
    return upload_last_activity(upload) + upload_expiry()


def upload_files(*, upload: Upload, outcome: str | None = None) -> QuerySet[UploadFile]:
    """The upload's report lines (in upload order by id), of one outcome group if given."""
    rows = UploadFile.objects.filter(upload=upload).select_related("image")
    if outcome:
        rows = rows.filter(outcome=OUTCOME_GROUPS[outcome])
    return rows


def upload_file_row(row: UploadFile) -> dict:
    """One report line: `file` (`#index`), `index`, `entry`, `outcome`, the image's `image`,
    `sex`, `age_days`, `age_source` when accepted, `reason` otherwise, `name` only where the
    site keeps names, and always `warning` ("" for none; one warning per line of text)."""
    line: dict = {"file": row.label, "index": row.index, "entry": row.entry}
    if row.name:
        line["name"] = row.name
    line["outcome"] = row.outcome
    if row.outcome == UploadFile.Outcome.ACCEPTED and row.image is not None:
        line.update(
            image=row.image_id,
            sex=row.image.sex,
            age_days=row.image.age_days,
            age_source=row.image.age_source,
        )
    else:
        if row.image_id is not None:
            line["image"] = row.image_id  # the stored image a duplicate repeats
        if row.reason:
            line["reason"] = row.reason
    line["warning"] = row.warning
    return line


def upload_report_lines(*, upload: Upload, group: str, warned: bool = False) -> Iterator[dict]:
    """One group's report lines (see `upload_report`) in upload order, read a chunk at a time,
    so that the report of an archive of a million files never sits in memory at once; only
    those with a warning if `warned`."""
    rows = upload_files(upload=upload, outcome=group).order_by("id")
    if warned:
        rows = rows.exclude(warning="")
    for row in rows.iterator(chunk_size=500):
        line = upload_file_row(row)
        del line["outcome"]
        yield line


def upload_report(*, upload: Upload) -> dict:
    """The whole per-file report in the shape `manage.py ingest --json` prints: lines
    grouped by outcome, each without its `outcome`."""
    groups = {
        group: list(upload_report_lines(upload=upload, group=group)) for group in OUTCOME_GROUPS
    }
    return {"upload": upload.pk, **groups}


def upload_status(*, upload: Upload) -> dict:
    """The small status document an upload page polls: state, counters and timestamps,
    without the per-file lines."""
    progress = upload.processed_files / upload.total_files if upload.total_files else 0.0
    return {
        "id": upload.pk,
        "site": upload.site.slug,
        "source": upload.source,
        "sender": upload.sender,
        "status": upload.status,
        "failure_reason": upload.failure_reason,
        "received_files": upload.received_files,
        "total_files": upload.total_files,
        "processed_files": upload.processed_files,
        "progress": round(progress, 4),
        "counts": {
            "accepted": upload.accepted_count,
            "duplicates": upload.duplicate_count,
            "rejected": upload.rejected_count,
        },
        "created_at": upload.created_at,
        "submitted_at": upload.submitted_at,
        "started_at": upload.started_at,
        "finished_at": upload.finished_at,
        "expires_at": upload_expires_at(upload=upload),
    }
