"""Export a frozen version as a ZIP another portal can verify, and import such a ZIP.

ZIP layout (deflate):

    images/<site>/<n>.dcm   the de-identified files as stored (n counts 1.. in image order)
    manifest.csv            file,image,site,sex,curated_age_days,sha256,pixel_sha256
    manifest.json           validation_set, version, manifest_sha256, items, files_sha256,
                            provenance, definition, frozen_at, exported_at, portal_version
    manifest.sig            this portal's Ed25519 signature of manifest.json's exact bytes,
                            with its public key (`portal.core.signing.sign`)

Importing re-ingests the files with this portal's site keys, so UIDs, file bytes and image ids
change; the pixels do not, which is why each row carries `pixel_sha256` (see `pixel_sha256`).
"""

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

from portal.accounts.audit import AuditAction
from portal.core import outbox, signing
from portal.core.csv_cells import SafeWriter
from portal.validation import services
from portal.validation.models import ValidationExport, ValidationSetVersion
from portal.validation.services import ValidationSetError

log = logging.getLogger(__name__)
EXPORT_TASK = "portal.validation.export_build"
RESEND_TASK = "portal.validation.resend"
CSV_FIELDS = ["file", "image", "site", "sex", "curated_age_days", "sha256", "pixel_sha256"]
SIGNATURE_FILE = "manifest.sig"
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
    SafeWriter(buffer, lineterminator="\n").writerow(values)
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
            manifest_bytes = json.dumps(manifest, indent=2).encode()
            zf.writestr(_member("manifest.json", exported_at), manifest_bytes)
            # Signing manifest.json signs everything: it holds manifest.csv's sha256, whose rows
            # hold each file's (docs/validation.md, "Signing and trust").
            try:
                signature = signing.sign(manifest_bytes)
            except signing.SigningError as exc:
                raise ValidationSetError(f"cannot sign the export: {exc}") from exc
            zf.writestr(_member(SIGNATURE_FILE, exported_at), signature)
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
        "signed_by_key": json.loads(signature)["public_key"],
    }


def export_start(*, version: ValidationSetVersion, user=None) -> ValidationExport:
    """Queue the ZIP's build on the `default` queue. A frozen version always exports the same
    files to the same path, so an export of it that is done (its file still there), or queued
    or running within the task time limit, is returned instead of building a second one."""
    services.require_lead(user=user, sites=version.validation_set.sites.all())
    with transaction.atomic():
        export = _export_reuse(version=version)
        reused = export is not None
        if export is None:
            export = ValidationExport.objects.create(
                version=version, total=version.item_count, created_by=user
            )
        if export.state == ValidationExport.State.QUEUED:
            # New, or asked for again while queued: the build is sent (again), since a broker
            # that was down may have lost the last send; it is built once (`export_run`).
            _export_send(export)
        # Asked for is on the record even when an earlier build is handed back: it is the
        # request to take every image of the set out of the portal.
        services.version_audit(
            user=user,
            version=export.version,
            action=AuditAction.EXPORT_START,
            after={"export": export.pk, "state": export.state, "reused": reused},
        )
    return export


def _export_reuse(*, version: ValidationSetVersion) -> ValidationExport | None:
    """A queued export is reused however old (its build is still to come: the sweep sends it
    until a worker takes it), a running one within the task time limit."""
    recent = timezone.now() - dt.timedelta(seconds=settings.TASK_HARD_LIMIT_S)
    State = ValidationExport.State
    for existing in ValidationExport.objects.filter(version=version).filter(
        Q(state__in=[State.DONE, State.QUEUED]) | Q(state=State.RUNNING, created_at__gte=recent)
    ):
        if existing.state != State.DONE or (settings.DATA_DIR / existing.file).is_file():
            return existing
    return None


def export_file_record(*, version: ValidationSetVersion, summary: dict) -> None:
    """A ZIP written by `validation_set export` (the operator's copy), on the record."""
    services.version_audit(
        user=None,
        version=version,
        action=AuditAction.EXPORT_DOWNLOAD,
        after={
            "to": "command line",
            "sha256": summary["sha256"],
            "size_bytes": summary["size_bytes"],
        },
    )


def export_download_record(*, user, export: ValidationExport) -> None:
    """The ZIP (every image of the version) handed to `user`, on the record."""
    services.version_audit(
        user=user,
        version=export.version,
        action=AuditAction.EXPORT_DOWNLOAD,
        after={"export": export.pk, "sha256": export.sha256, "size_bytes": export.size_bytes},
    )


def _export_send(export: ValidationExport) -> None:
    ValidationExport.objects.filter(pk=export.pk).update(sent_at=timezone.now())
    outbox.send_on_commit(EXPORT_TASK, args=[export.pk])


def export_resend(*, sent_before: dt.datetime | None = None) -> int:
    """Send again the build of every export still `queued` whose last send is older than
    `sent_before` (default: RESEND_AFTER_S ago), as beat does every minute and `run_portal`
    at start. Returns how many were sent."""
    cutoff = sent_before or timezone.now() - dt.timedelta(seconds=settings.RESEND_AFTER_S)
    State = ValidationExport.State
    waiting = ValidationExport.objects.filter(state=State.QUEUED).filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True)
    )
    sent = 0
    for export_id in waiting.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            export = ValidationExport.objects.select_for_update().filter(pk=export_id).first()
            if export is not None and export.state == State.QUEUED:
                _export_send(export)
                sent += 1
    return sent


def export_run(*, export_id: int, redelivered: bool = False) -> ValidationExport:
    """What the task runs: a queued export is built once. A message for a done, failed or
    running export does nothing, except one the broker hands back after its worker died
    (`redelivered`), which rebuilds the running export that worker left."""
    State = ValidationExport.State
    with transaction.atomic():
        export = ValidationExport.objects.select_for_update().get(pk=export_id)
        if export.state in (State.DONE, State.FAILED) or (
            export.state == State.RUNNING and not redelivered
        ):
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
