"""One file's outcome stored: its report line, the image and its file, duplicates, counters."""

import hashlib
import hmac
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Count, Q

from portal.ingest.models import Image, Site, Upload, UploadFile
from portal.ingest.outcomes import Prepared, Refused, warning_text

DUPLICATE_REASON = "already stored for this site"
Outcome = UploadFile.Outcome


def file_name_hash(*, site: Site, name: str) -> str:
    """HMAC-SHA256 of an uploader's name for a file, keyed by the site's secret: the same name
    hashes the same within the site (a site that holds the name can find its line), and the
    hash does not give the name back. Domain-separated from the UID pseudonyms."""
    message = b"upload-file-name\0" + name.encode("utf-8", "surrogatepass")
    return hmac.new(site.pseudonym_key.encode(), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class FileRef:
    """Which file of an upload a report line is about: its position (`index`, and `entry`
    inside an archive) and the uploader's name for it, which stays in memory unless the site
    keeps names."""

    index: int
    entry: int | None
    name: str


def _counters_refresh(upload_id: int) -> None:
    """Set the upload's counters from its report lines (an index-only count): once per batch
    of files rather than a write per file, and right again after a crash."""
    counts = dict(
        UploadFile.objects.filter(upload_id=upload_id)
        .order_by()
        .values_list("outcome")
        .annotate(n=Count("id"))
    )
    Upload.objects.filter(pk=upload_id).update(
        processed_files=sum(counts.values()),
        accepted_count=counts.get(Outcome.ACCEPTED, 0),
        duplicate_count=counts.get(Outcome.DUPLICATE, 0),
        rejected_count=counts.get(Outcome.REJECTED, 0),
    )


def _record(
    upload: Upload,
    ref: FileRef,
    outcome: str,
    reason: str = "",
    image: Image | None = None,
    *,
    warning: str = "",
) -> UploadFile:
    """Write one report line (joining the caller's transaction if there is one)."""
    line = _line(upload, ref, outcome, reason, image, warning=warning)
    line.save(force_insert=True)
    return line


def _line(
    upload: Upload,
    ref: FileRef,
    outcome: str,
    reason: str = "",
    image: Image | None = None,
    *,
    warning: str = "",
) -> UploadFile:
    """One report line, not saved yet. The name is kept only where the site keeps names; the
    hash and position always."""
    site = upload.site
    return UploadFile(
        upload=upload,
        index=ref.index,
        entry=ref.entry,
        name_hash=file_name_hash(site=site, name=ref.name),
        name=ref.name if site.keep_file_names else "",
        outcome=outcome,
        reason=reason,
        warning=warning,
        image=image,
    )


def _lock_site(site_id: int) -> None:
    """Lock the site's row until the caller's transaction ends, so that two uploads storing the
    same film at once store one after the other and the second finds the first (its insert
    meets the unique constraints). SQLite has no row locks, and needs none: it runs one
    writing transaction at a time."""
    if connection.features.has_select_for_no_key_update:
        # As the ORM's select_for_update(no_key=True) writes it, without compiling the query
        # once per file.
        table = connection.ops.quote_name(Site._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR NO KEY UPDATE", [site_id])  # noqa: S608
    elif connection.features.has_select_for_update:
        list(Site.objects.select_for_update().filter(pk=site_id).values("pk"))


def _free_frames(exc: BaseException | None) -> None:
    """Let go of the frames a caught database error's traceback holds. Django's error wrapper
    re-raises it from a frame that refers to the error itself: a reference cycle that kept
    those frames' objects (a run of files and their rows) until the garbage collector's full
    pass, rarer as the heap grows, so an ingest of many duplicates grew with its files."""
    while exc is not None:
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _duplicate_of(image: Image) -> tuple[str, Image | None]:
    """What a unique constraint found, with the reason: the same pixels (the same instance
    again, or a re-export of the film under new UIDs), else the same instance with other
    pixels. One query, by the two unique indexes."""
    same = Q(sop_instance_uid=image.sop_instance_uid)
    if image.pixel_sha256:
        same |= Q(pixel_sha256=image.pixel_sha256)
    matches = list(
        Image.objects.filter(same, site_id=image.site_id)
        .order_by("pk")
        .only("pk", "uuid", "sop_instance_uid", "pixel_sha256")
    )
    pixels = image.pixel_sha256
    original = next((m for m in matches if pixels and m.pixel_sha256 == pixels), None)
    if original is not None and original.sop_instance_uid != image.sop_instance_uid:
        return f"same pixels as image {original.uuid}", original
    original = original or next(iter(matches), None)
    if original is not None:
        return f"same instance (SOPInstanceUID) as image {original.uuid}", original
    return DUPLICATE_REASON, None  # deleted meanwhile


def _new_image(upload: Upload, prepared: Prepared) -> Image:
    """The image row of a prepared file, not saved yet, with the path its file will have."""
    image = Image(
        site=upload.site,
        upload=upload,
        size_bytes=prepared.size_bytes,
        sha256=prepared.sha256,
        pixel_sha256=prepared.pixel_sha256,
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
    image.file = f"images/{upload.site.slug}/{image.uuid}.dcm"
    return image


def _store(*, upload: Upload, name: FileRef, prepared: Prepared | Refused) -> UploadFile:
    """Record the image and move its file into storage in one transaction; a duplicate is what
    the insert's unique constraints refuse."""
    if isinstance(prepared, Refused):
        return _record(upload, name, Outcome.REJECTED, prepared.reason)
    site = upload.site
    tmp = Path(prepared.tmp_path)
    warning = warning_text(prepared.warnings)  # an accepted file's, or a duplicate's
    try:
        image = _new_image(upload, prepared)
        target = settings.DATA_DIR / image.file
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with transaction.atomic():
                _lock_site(site.pk)
                # A duplicate is found by the unique constraints (site and pixels, site and
                # remapped SOPInstanceUID): no lookup before the insert.
                image.save(force_insert=True)
                record = _record(upload, name, Outcome.ACCEPTED, image=image, warning=warning)
                # Into place before the commit: once its row is visible, the file is there.
                os.replace(tmp, target)
        except IntegrityError as exc:
            _free_frames(exc)
            target.unlink(missing_ok=True)  # there only if the commit itself failed
            return _record(upload, name, Outcome.DUPLICATE, *_duplicate_of(image), warning=warning)
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


def _store_many(
    *, upload: Upload, files: list[tuple[FileRef, Prepared | Refused]]
) -> list[UploadFile]:
    """Store a run of files as `_store` stores each, in one transaction: one lock of the site,
    one insert of the images and one of the report lines, one commit (a write to the disk on
    PostgreSQL) for the run rather than for each file. When the database refuses any of them
    (a duplicate, a value out of range), nothing of the run is kept and each file is stored
    on its own, by `_store`, which names the one refused and why."""
    if len(files) < 2:
        return [_store(upload=upload, name=ref, prepared=p) for ref, p in files]
    images: list[Image] = []
    lines: list[UploadFile] = []
    moves: list[tuple[Path, Path]] = []  # each accepted file's temporary path and its place
    for ref, prepared in files:
        if isinstance(prepared, Refused):
            lines.append(_line(upload, ref, Outcome.REJECTED, prepared.reason))
            continue
        image = _new_image(upload, prepared)
        images.append(image)
        moves.append((Path(prepared.tmp_path), settings.DATA_DIR / image.file))
        warning = warning_text(prepared.warnings)
        lines.append(_line(upload, ref, Outcome.ACCEPTED, image=image, warning=warning))
    for folder in {target.parent for _tmp, target in moves}:
        folder.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    try:
        with transaction.atomic():
            _lock_site(upload.site_id)
            Image.objects.bulk_create(images)
            UploadFile.objects.bulk_create(lines)
            # Into place before the commit, as `_store` does.
            for tmp, target in moves:
                os.replace(tmp, target)
                moved.append((tmp, target))
    except (IntegrityError, DataError) as exc:
        _free_frames(exc)
        for tmp, target in moved:  # back where `_store` expects them (the commit failed)
            os.replace(target, tmp)
    except BaseException:
        for tmp, target in moves:
            tmp.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
        raise
    else:
        return lines
    return [_store(upload=upload, name=ref, prepared=p) for ref, p in files]
