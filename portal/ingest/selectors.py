"""Reads for the ingest area: the upload report that REST, CLI and web page all show."""

from django.db.models import QuerySet

from portal.ingest.models import Site, Upload, UploadFile


def site_list() -> QuerySet[Site]:
    return Site.objects.all()


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
