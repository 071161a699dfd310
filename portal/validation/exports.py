"""Export a frozen version as a ZIP another portal can verify, and import such a ZIP.

ZIP layout (deflate):

    images/<site>/<n>.dcm   the de-identified files as stored (n counts 1.. in image order)
    manifest.csv            file,image,site,sex,curated_age_days,sha256,pixel_sha256
    manifest.json           validation_set, version, manifest_sha256, items, files_sha256,
                            provenance, definition, frozen_at, exported_at, portal_version

Importing re-ingests the files with this portal's site keys, so UIDs, file bytes and image ids
change; the pixels do not, which is why each row carries `pixel_sha256` (see `pixel_sha256`).
"""

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal.celery import app as celery_app
from portal.validation import services
from portal.validation.models import ValidationExport, ValidationSetVersion
from portal.validation.services import ValidationSetError

log = logging.getLogger(__name__)
EXPORT_TASK = "portal.validation.export_build"
CSV_FIELDS = ["file", "image", "site", "sex", "curated_age_days", "sha256", "pixel_sha256"]
CHUNK = 1024 * 1024
Progress = Callable[[int, int], None]


def pixel_sha256(path: Path) -> str:
    """sha256 of the decoded pixels, the one thing import keeps unchanged: pydicom's
    `pixel_array` (stored values, before rescale, VOI or MONOCHROME1 inversion; the dtype pydicom
    gives, e.g. uint16 for 16 bits allocated), C order, little-endian, no header.
    Reproduce with `hashlib.sha256(ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<"))
    .tobytes())`."""
    pixels = pydicom.dcmread(path).pixel_array
    canonical = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return hashlib.sha256(canonical.data).hexdigest()


def _csv_line(values: list) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def _member(name: str, when: dt.datetime, size: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    info.file_size = size  # lets zipfile decide on ZIP64 before streaming
    return info


def export_write(
    *, version: ValidationSetVersion, out: Path, progress: Progress | None = None
) -> dict:
    """Write the version's ZIP to `out`, streaming one file at a time (memory does not grow
    with the set). Each stored file must still have the sha256 it was frozen with, else the
    export fails naming it and `out` is left untouched: a temporary file beside it is renamed
    only at the end."""
    validation_set = version.validation_set
    exported_at = timezone.now()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    tmp = Path(tmp_name)
    items = version.items.select_related("image", "site").order_by("image_id")
    total = version.item_count
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf,
            tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as rows,
        ):
            rows.write(_csv_line(CSV_FIELDS))
            for n, item in enumerate(items.iterator(chunk_size=500), start=1):
                name = f"images/{item.site.slug}/{n}.dcm"
                stored = settings.DATA_DIR / item.image.file
                label = f"{item.image.file} (image {item.image_id})"
                try:
                    size = stored.stat().st_size
                    pixels = pixel_sha256(stored)
                except OSError as exc:
                    raise ValidationSetError(f"{label}: cannot be read ({exc.strerror})") from exc
                except Exception as exc:  # a stored file that no longer decodes
                    raise ValidationSetError(
                        f"{label}: its pixels do not decode ({type(exc).__name__})"
                    ) from exc
                digest = hashlib.sha256()
                with (
                    stored.open("rb") as src,
                    zf.open(_member(name, exported_at, size), "w") as dst,
                ):
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                if digest.hexdigest() != item.sha256:
                    raise ValidationSetError(
                        f"{label}: the stored file's sha256 differs from the frozen item's "
                        "(changed since freezing)"
                    )
                rows.write(
                    _csv_line(
                        [name, item.image_id, item.site.slug, item.sex, item.curated_age_days]
                        + [item.sha256, pixels]
                    )
                )
                if progress:
                    progress(n, total)
            csv_size = rows.tell()
            rows.seek(0)
            files_digest = hashlib.sha256()
            with zf.open(_member("manifest.csv", exported_at, csv_size), "w") as dst:
                while chunk := rows.read(CHUNK):
                    files_digest.update(chunk)
                    dst.write(chunk)
            manifest = {
                "validation_set": validation_set.name,
                "version": version.number,
                "manifest_sha256": version.manifest_sha256,
                "items": total,
                "files_sha256": files_digest.hexdigest(),
                "provenance": version.provenance,
                "definition": version.definition,
                "frozen_at": version.frozen_at.isoformat(),
                "exported_at": exported_at.isoformat(),
                "portal_version": services.portal_version(),
            }
            zf.writestr(_member("manifest.json", exported_at), json.dumps(manifest, indent=2))
        digest = hashlib.sha256()
        with tmp.open("rb") as written:
            while chunk := written.read(CHUNK):
                digest.update(chunk)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "file": str(out),
        "validation_set": validation_set.name,
        "version": version.number,
        "items": total,
        "size_bytes": out.stat().st_size,
        "sha256": digest.hexdigest(),
        "manifest_sha256": version.manifest_sha256,
        "files_sha256": manifest["files_sha256"],
    }


def export_start(*, version: ValidationSetVersion, user=None) -> ValidationExport:
    """Queue the ZIP's build on the `default` queue. A frozen version always exports the same
    files to the same path, so an export of it that is done (its file still there), or queued
    or running within the task time limit, is returned instead of building a second one."""
    services.require_lead(user=user, sites=version.validation_set.sites.all())
    recent = timezone.now() - dt.timedelta(seconds=settings.TASK_HARD_LIMIT_S)
    State = ValidationExport.State
    for existing in ValidationExport.objects.filter(version=version).filter(
        Q(state=State.DONE) | Q(state__in=[State.QUEUED, State.RUNNING], created_at__gte=recent)
    ):
        if existing.state != State.DONE or (settings.DATA_DIR / existing.file).is_file():
            return existing
    export = ValidationExport.objects.create(
        version=version, total=version.item_count, created_by=user
    )
    export_id = export.pk
    transaction.on_commit(
        lambda: celery_app.send_task(EXPORT_TASK, args=[export_id], queue="default")
    )
    return export


def export_run(*, export_id: int) -> ValidationExport:
    """What the task runs. A redelivered task leaves a done (or failed) export alone and
    rebuilds one that a lost worker left running."""
    State = ValidationExport.State
    with transaction.atomic():
        export = ValidationExport.objects.select_for_update().get(pk=export_id)
        if export.state in (State.DONE, State.FAILED):
            return export
        export.state, export.done = State.RUNNING, 0
        export.save(update_fields=["state", "done"])
    version = ValidationSetVersion.objects.select_related("validation_set").get(
        pk=export.version_id
    )
    relative = f"exports/{version.validation_set.name}-v{version.number}.zip"
    step = max(1, version.item_count // 100)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            ValidationExport.objects.filter(pk=export_id).update(done=done)

    rows = ValidationExport.objects.filter(pk=export_id)
    try:
        summary = export_write(version=version, out=settings.DATA_DIR / relative, progress=progress)
    except Exception as exc:
        log.exception("export %s failed", export_id)
        if isinstance(exc, ValidationSetError):
            reason = str(exc)
        elif isinstance(exc, OSError):
            reason = f"export stopped: {type(exc).__name__} ({exc.strerror})"
        else:
            reason = f"export stopped: {type(exc).__name__}"
        rows.update(state=State.FAILED, failure_reason=reason, finished_at=timezone.now())
    else:
        rows.update(
            state=State.DONE,
            done=summary["items"],
            file=relative,
            size_bytes=summary["size_bytes"],
            sha256=summary["sha256"],
            finished_at=timezone.now(),
        )
    export.refresh_from_db()
    return export


# Import -------------------------------------------------------------------------------------
