"""Reads for the ingest area: the upload report that REST, CLI and web page all show."""

from collections.abc import Iterable

from django.db.models import QuerySet

from portal.accounts.selectors import site_scope
from portal.ingest.models import Site, Upload, UploadFile


def site_list(*, user, roles: Iterable[str] | None = None) -> QuerySet[Site]:
    """The user's sites (where they hold one of `roles`, any role when None)."""
    return Site.objects.filter(site_scope(user=user, roles=roles, field="pk"))


def upload_list(*, user) -> QuerySet[Upload]:
    return Upload.objects.filter(site_scope(user=user)).select_related("site")


def upload_report(*, upload: Upload) -> dict:
    """The per-file report in the shape `manage.py ingest --json` prints."""
    accepted, duplicates, rejected = [], [], []
    rows = UploadFile.objects.filter(upload=upload).select_related("image").order_by("id")
    for row in rows.iterator(chunk_size=2000):
        if row.outcome == UploadFile.Outcome.ACCEPTED and row.image is not None:
            accepted.append(
                {
                    "file": row.name,
                    "image": row.image_id,
                    "sex": row.image.sex,
                    "age_days": row.image.age_days,
                    "age_source": row.image.age_source,
                }
            )
        elif row.outcome == UploadFile.Outcome.DUPLICATE:
            duplicates.append({"file": row.name})
        else:
            rejected.append({"file": row.name, "reason": row.reason})
    return {
        "upload": upload.pk,
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": rejected,
    }


def upload_status(*, upload: Upload) -> dict:
    """Status, counters and progress of an upload, without the per-file lines."""
    progress = upload.processed_files / upload.total_files if upload.total_files else 0.0
    return {
        "id": upload.pk,
        "site": upload.site.slug,
        "source": upload.source,
        "status": upload.status,
        "failure_reason": upload.failure_reason,
        "total_files": upload.total_files,
        "processed_files": upload.processed_files,
        "progress": round(progress, 4),
        "counts": {
            "accepted": upload.accepted_count,
            "duplicates": upload.duplicate_count,
            "rejected": upload.rejected_count,
        },
        "created_at": upload.created_at,
        "started_at": upload.started_at,
        "finished_at": upload.finished_at,
    }
