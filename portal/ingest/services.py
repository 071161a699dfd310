"""Ingest: every interface (web page, REST, CLI, Celery task) comes through here.

One file at a time: read, check, age, de-identify, de-duplicate, write, record, in one
transaction per file, so a bad file leaves nothing behind and never stops the rest.
"""

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from portal.celery import app as celery_app
from portal.ingest.archive import Item, Source, ZipLimits, count_items, iter_items
from portal.ingest.deid import Pseudonyms, deidentify
from portal.ingest.dicom import (
    Limits,
    Rejected,
    check_radiograph,
    compute_age,
    normalise_sex,
    read_dataset,
)
from portal.ingest.models import Image, Site, Upload, UploadFile

log = logging.getLogger(__name__)
PROCESS_TASK = "portal.ingest.upload_process"
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

    Safe to run again after a crash: files already in the report are skipped.
    """
    zip_limits, limits = _zip_limits(), _image_limits()
    already = set(upload.files.values_list("name", flat=True)) if upload.processed_files else set()
    total = count_items(sources, zip_limits)
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING, started_at=timezone.now(), total_files=total
    )
    if on_total:
        on_total(total)
    pseudonyms = Pseudonyms(key=upload.site.pseudonym_key.encode())
    tmp_dir = settings.DATA_DIR / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        for item in iter_items(sources, zip_limits, tmp_dir):
            if item.name in already:
                continue
            record = _ingest_item(
                upload=upload, item=item, pseudonyms=pseudonyms, limits=limits, tmp_dir=tmp_dir
            )
            if on_file:
                on_file(record)
    except Exception as exc:
        log.exception("upload %s failed", upload.pk)
        Upload.objects.filter(pk=upload.pk).update(
            status=Upload.Status.FAILED,
            failure_reason=f"ingest stopped: {type(exc).__name__}",
            finished_at=timezone.now(),
        )
        raise
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.DONE, finished_at=timezone.now()
    )
    upload.refresh_from_db()
    log.info(
        "upload %s done: %s accepted, %s duplicates, %s rejected",
        upload.pk,
        upload.accepted_count,
        upload.duplicate_count,
        upload.rejected_count,
    )
    return upload


_COUNTERS = {
    Outcome.ACCEPTED: "accepted_count",
    Outcome.DUPLICATE: "duplicate_count",
    Outcome.REJECTED: "rejected_count",
}


def _record(
    upload: Upload, name: str, outcome: str, reason: str = "", image: Image | None = None
) -> UploadFile:
    """Write one report line and move the counters; the caller holds the transaction."""
    with transaction.atomic():
        record = UploadFile.objects.create(
            upload=upload, name=name, outcome=outcome, reason=reason, image=image
        )
        counter = _COUNTERS[outcome]
        Upload.objects.filter(pk=upload.pk).update(
            processed_files=F("processed_files") + 1, **{counter: F(counter) + 1}
        )
    return record


def _ingest_item(
    *, upload: Upload, item: Item, pseudonyms: Pseudonyms, limits: Limits, tmp_dir: Path
) -> UploadFile:
    if item.reason or item.path is None:
        return _record(upload, item.name, Outcome.REJECTED, item.reason or "unreadable")
    try:
        ds = read_dataset(item.path)
        check_radiograph(ds, limits)
        age = compute_age(ds)
        sex = normalise_sex(ds.get("PatientSex"))
        ids = deidentify(ds, pseudonyms=pseudonyms, age_days=age.days)
    except Rejected as exc:
        return _record(upload, item.name, Outcome.REJECTED, str(exc))
    except Exception as exc:  # odd real-world files: reject the file, keep the upload going
        reason = f"unreadable DICOM ({type(exc).__name__})"
        return _record(upload, item.name, Outcome.REJECTED, reason)

    site = upload.site
    if Image.objects.filter(site=site, sop_instance_uid=ids.sop_instance_uid).exists():
        return _record(upload, item.name, Outcome.DUPLICATE, "already stored for this site")

    data, sha256 = _encode(ds)
    image = Image(
        site=site,
        upload=upload,
        size_bytes=len(data),
        sha256=sha256,
        sop_instance_uid=ids.sop_instance_uid,
        study_instance_uid=ids.study_instance_uid,
        series_instance_uid=ids.series_instance_uid,
        patient_pseudonym=ids.patient_pseudonym,
        sex=sex,
        age_days=age.days,
        age_source=age.source,
        age_resolution_days=age.resolution_days,
        **_acquisition(ds),
    )
    image.file = f"images/{site.slug}/{image.uuid}.dcm"
    target = settings.DATA_DIR / image.file
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="ingest-", suffix=".dcm", dir=tmp_dir)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    try:
        with transaction.atomic():
            image.save()
            record = _record(upload, item.name, Outcome.ACCEPTED, image=image)
            os.replace(tmp_name, target)
    except IntegrityError:
        # Another upload stored the same instance between our check and our insert.
        target.unlink(missing_ok=True)
        return _record(upload, item.name, Outcome.DUPLICATE, "already stored for this site")
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return record


def _encode(ds: Dataset) -> tuple[bytes, str]:
    """Serialise as a DICOM Part 10 file and hash exactly the bytes that will be stored."""
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else None
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, _little = getattr(ds, "original_encoding", (True, True))
        meta = meta or FileMetaDataset()
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta = meta
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _acquisition(ds: Dataset) -> dict:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        spacing_mm = [float(v) for v in spacing] if spacing else None
    except (TypeError, ValueError):
        spacing_mm = None
    return {
        "modality": str(ds.Modality).strip().upper(),
        "view_position": str(ds.get("ViewPosition", "") or "").strip()[:16],
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "pixel_spacing_mm": spacing_mm,
        "photometric_interpretation": str(ds.PhotometricInterpretation).strip().upper(),
        "bits_stored": int(ds.get("BitsStored", ds.BitsAllocated)),
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "manufacturer": str(ds.get("Manufacturer", "") or "").strip()[:128],
        "burned_in_annotation": str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES",
    }
