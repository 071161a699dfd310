"""Import another portal's export of a validation set (see `exports` for the ZIP layout):
every checksum is verified before anything is kept, then the files come in through the ingest
service with this portal's site keys, and the set is created frozen with the same items."""

import csv
import hashlib
import io
import json
import logging
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_slug
from django.db import transaction

from portal.accounts.audit import AuditAction
from portal.accounts.selectors import is_lead_anywhere
from portal.core.csv_cells import csv_text
from portal.core.files import data_folder
from portal.ingest.archive import Source
from portal.ingest.models import Image, Site, Upload, UploadFile
from portal.ingest.services import site_create, upload_create, upload_process
from portal.validation import import_checks, services
from portal.validation.exports import (
    CHUNK,
    CSV_FIELDS,
    SIGNATURE_FILE,
    Progress,
    pixel_sha256,
)
from portal.validation.models import ValidationSet, ValidationSetVersion
from portal.validation.services import ValidationSetError

log = logging.getLogger(__name__)
_MANIFEST_JSON_MAX = 64 * 1024 * 1024


def _refuse(name: str, reason: str) -> ValidationSetError:
    return ValidationSetError(f"{name}: {reason}")


def _read_manifests(zf: zipfile.ZipFile, *, allow_unsigned: bool) -> tuple[dict, list[dict], dict]:
    """manifest.json, the rows of manifest.csv, checked against each other, and the
    signature's provenance (`import_checks.signature_check`), which is checked first: nothing
    of an export is believed before its signer is known and trusted."""
    try:
        info = zf.getinfo("manifest.json")
    except KeyError:
        raise _refuse("manifest.json", "missing (not a validation set export)") from None
    if info.file_size > _MANIFEST_JSON_MAX:
        raise _refuse("manifest.json", "too large")
    try:
        raw = zf.read(info)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _refuse("manifest.json", f"corrupt in the ZIP ({type(exc).__name__})") from exc
    signature = import_checks.signature_check(zf, raw, allow_unsigned=allow_unsigned)
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise _refuse("manifest.json", f"unreadable ({type(exc).__name__})") from exc
    import_checks.manifest_check(manifest)
    try:
        with zf.open("manifest.csv") as fh:
            data = fh.read()
    except KeyError:
        raise _refuse("manifest.csv", "missing") from None
    except zipfile.BadZipFile as exc:
        raise _refuse("manifest.csv", "corrupt in the ZIP") from exc
    if hashlib.sha256(data).hexdigest() != manifest["files_sha256"]:
        raise _refuse("manifest.csv", "sha256 differs from manifest.json's files_sha256")
    try:
        reader = csv.DictReader(io.StringIO(data.decode()))
        fields = reader.fieldnames
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _refuse("manifest.csv", f"unreadable ({type(exc).__name__})") from exc
    if fields != CSV_FIELDS:
        raise _refuse("manifest.csv", f"columns must be {','.join(CSV_FIELDS)}")
    try:
        rows = [_row(r, line) for line, r in enumerate(reader, start=2)]
    except csv.Error as exc:
        raise _refuse("manifest.csv", f"unreadable ({type(exc).__name__})") from exc
    seen = Counter(r["file"] for r in rows)
    if dup := sorted(n for n, c in seen.items() if c > 1):
        raise _refuse(dup[0], "listed twice in manifest.csv")
    if len(rows) != manifest["items"] or not rows:
        raise _refuse("manifest.csv", f"{len(rows)} rows for {manifest['items']} items")
    if services.manifest_sha256(rows) != manifest["manifest_sha256"]:
        raise _refuse("manifest.csv", "its items do not give manifest.json's manifest_sha256")
    return manifest, rows, signature


def _row(raw: dict, line: int) -> dict:
    where = f"manifest.csv line {line}"
    if None in raw or any(raw[k] is None for k in CSV_FIELDS):  # too many or too few fields
        raise _refuse(where, f"must have the {len(CSV_FIELDS)} fields {','.join(CSV_FIELDS)}")
    name = raw["file"]
    if not name.startswith("images/") or ".." in name.split("/"):
        raise _refuse(where, f"file {name!r} is not under images/")
    try:
        site = csv_text(raw["site"])  # a slug such as "-x" is written "'-x" (csv_cells)
        validate_slug(site)
        row = {
            "file": name,
            "image": int(raw["image"]),
            "site": site,
            "sex": raw["sex"],
            "curated_age_days": int(raw["curated_age_days"]),
            "sha256": raw["sha256"],
            "pixel_sha256": raw["pixel_sha256"],
        }
    except (ValidationError, ValueError, TypeError) as exc:
        raise _refuse(where, "malformed (image, site or age)") from exc
    import_checks.row_values_check(row, where)
    hex64 = import_checks.HEX64
    if not (hex64.fullmatch(row["sha256"]) and hex64.fullmatch(row["pixel_sha256"])):
        raise _refuse(where, "malformed sha256")
    return row


def _refuse_known(manifest: dict, rows: list[dict], targets: dict[str, str]) -> None:
    """Refuse what this portal already holds: the same export imported before, or one of its
    own exports (whose files it still stores)."""
    checksum = manifest["manifest_sha256"]
    earlier = ValidationSet.objects.filter(imported_manifest_sha256=checksum).first()
    if earlier is not None:
        first = earlier.versions.order_by("number").first()
        raise ValidationSetError(
            f"already imported as {earlier.name} v{first.number if first else 1}"
        )
    own = ValidationSetVersion.objects.filter(manifest_sha256=checksum).first()
    if own is not None:
        raise ValidationSetError(
            f"this is this portal's own {own.validation_set.name} v{own.number}"
        )
    stored = Image.objects.filter(
        site__slug__in=targets.values(), sha256__in=[r["sha256"] for r in rows]
    ).values_list("sha256", "site__slug")
    if found := dict(stored):
        row = next(r for r in rows if r["sha256"] in found)
        raise _refuse(row["file"], f"already stored in site {found[row['sha256']]}")


def _target_sites(rows: list[dict], site_prefix: str) -> dict[str, str]:
    targets = {}
    for slug in sorted({r["site"] for r in rows}):
        target = f"{site_prefix}{slug}"
        try:
            validate_slug(target)
        except ValidationError:
            raise ValidationSetError(f"site {target!r} would not be a valid slug") from None
        if len(target) > Site._meta.get_field("slug").max_length:
            raise ValidationSetError(f"site {target!r} is too long")
        targets[slug] = target
    return targets


def _set_name(name: str | None, exported: str) -> str:
    """`name`, else the exported name, with `-imported[-N]` when that is taken here."""
    candidate = name or exported
    try:
        validate_slug(candidate)
    except ValidationError:
        raise ValidationSetError(f"{candidate!r} is not a valid set name (a slug)") from None
    if name is not None and ValidationSet.objects.filter(name=name).exists():
        raise ValidationSetError(f"validation set {name!r} exists")
    base, n = candidate[:80], 1
    while ValidationSet.objects.filter(name=candidate).exists():
        candidate = f"{base}-imported" + (f"-{n}" if n > 1 else "")
        n += 1
    return candidate


def _verify_extract(
    zf: zipfile.ZipFile, rows: list[dict], folder: Path, progress: Progress | None
) -> list[Path]:
    """Copy each listed file to `folder` (under a name of ours), checking its sha256 and
    pixel_sha256; refuse files that are missing, unlisted, altered or look like a ZIP bomb."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    counts = Counter(i.filename for i in infos)
    if twice := sorted(n for n, c in counts.items() if c > 1):
        raise _refuse(twice[0], "stored twice in the ZIP")
    listed = {r["file"] for r in rows}
    if extra := sorted(set(counts) - listed - {"manifest.json", "manifest.csv", SIGNATURE_FILE}):
        raise _refuse(extra[0], "in the ZIP but not listed in manifest.csv")
    if missing := [r["file"] for r in rows if r["file"] not in counts]:
        raise _refuse(missing[0], "listed in manifest.csv but missing from the ZIP")
    by_name = {i.filename: i for i in infos}
    limits = settings.INGEST
    if sum(by_name[n].file_size for n in listed) > limits["ZIP_MAX_UNCOMPRESSED_BYTES"]:
        raise ValidationSetError("the files would expand beyond PORTAL_ZIP_MAX_UNCOMPRESSED_BYTES")
    paths = []
    for n, row in enumerate(rows, start=1):
        info = by_name[row["file"]]
        if info.flag_bits & 0x1:
            raise _refuse(row["file"], "encrypted")
        if info.file_size > limits["ZIP_MAX_RATIO"] * max(1, info.compress_size):
            raise _refuse(row["file"], "compression ratio over the limit (a ZIP bomb?)")
        path = folder / f"{n:07d}.dcm"
        digest = hashlib.sha256()
        try:
            with zf.open(info) as src, path.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
        except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
            raise _refuse(row["file"], f"corrupt in the ZIP ({type(exc).__name__})") from exc
        if digest.hexdigest() != row["sha256"]:
            raise _refuse(row["file"], "sha256 differs from the manifest (altered or corrupt)")
        try:
            pixels = pixel_sha256(path)
        except Exception as exc:
            raise _refuse(row["file"], f"pixels do not decode ({type(exc).__name__})") from exc
        if pixels != row["pixel_sha256"]:
            raise _refuse(row["file"], "pixel_sha256 differs from the manifest")
        paths.append(path)
        if progress:
            progress(n, 2 * len(rows))
    return paths


def import_zip(
    *,
    path: Path,
    site_prefix: str = "",
    name: str | None = None,
    user=None,
    allow_unsigned: bool = False,
    progress: Progress | None = None,
    label: str | None = None,
) -> ValidationSetVersion:
    """Import another portal's export as a new set with one frozen version, or nothing at all.

    Everything is verified before anything is kept: first the signature of manifest.json by
    a trusted portal (an unsigned export only with `allow_unsigned`; a signature that does not
    verify never), then the manifests' shape, each row's values (ages 0 to under 18 years, a
    known sex) and the manifests against each other, every file's sha256 and pixel_sha256, no
    file missing or extra. The version's provenance records who signed it
    (`imported_from.signature`). The files then go through ingest (this portal's
    de-identification and site keys) into sites `site_prefix + <site>`, created when missing.
    A rejected or duplicate file, or any error, undoes the whole import: one outer transaction
    for the rows, and the files ingest stored are removed. An export imported before is refused
    with "already imported as NAME vN". `progress(done, total)` counts verification, then
    ingest, over 2 x items.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValidationSetError(
            f"{label or path.name}: not a readable ZIP ({type(exc).__name__})"
        ) from exc
    with zf:
        manifest, rows, signature = _read_manifests(zf, allow_unsigned=allow_unsigned)
        targets = _target_sites(rows, site_prefix)
        if user is not None and not user.is_superuser:
            # Importing creates images (and perhaps sites): leads of every target site only.
            existing = list(Site.objects.filter(slug__in=targets.values()))
            if len(existing) < len(targets):
                raise services.ValidationSetForbidden("only an administrator can create sites")
            services.require_lead(user=user, sites=existing)
        _refuse_known(manifest, rows, targets)
        set_name = _set_name(name, str(manifest["validation_set"]))
        folder = Path(tempfile.mkdtemp(prefix="import-", dir=data_folder("tmp")))
        try:
            extracted = _verify_extract(zf, rows, folder, progress)
            return _ingest_record(
                manifest=manifest,
                rows=rows,
                extracted=extracted,
                targets=targets,
                name=set_name,
                user=user,
                signature=signature,
                progress=progress,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def may_import(*, user) -> bool:
    """Who may try an import at all: administrators and leads of some site (the import itself
    checks every site it lands in)."""
    return user.is_superuser or is_lead_anywhere(user=user)


def import_upload(*, upload: UploadedFile, **options) -> ValidationSetVersion:
    """`import_zip` of a ZIP received by the page or the API. The staging upload handler
    leaves it on disk (`temporary_file_path`), deleted at the end of the request; any other
    upload is copied to a temporary file under `tmp/` first, and removed after."""
    rejection = getattr(upload, "rejection", None)  # too large, not stored (a non-ZIP file)
    if rejection:
        raise ValidationSetError(f"{upload.name}: {rejection}")
    if hasattr(upload, "temporary_file_path"):
        return import_zip(path=Path(upload.temporary_file_path()), label=upload.name, **options)
    fd, name = tempfile.mkstemp(prefix="import-", suffix=".zip", dir=data_folder("tmp"))
    try:
        with open(fd, "wb") as out:
            for chunk in upload.chunks(CHUNK):
                out.write(chunk)
        return import_zip(path=Path(name), label=upload.name, **options)
    finally:
        Path(name).unlink(missing_ok=True)


def _ingest_record(
    *,
    manifest: dict,
    rows: list[dict],
    extracted: list[Path],
    targets: dict[str, str],
    name: str,
    user,
    signature: dict,
    progress: Progress | None,
) -> ValidationSetVersion:
    stored: list[Path] = []  # files ingest moved into storage: removed if the import fails
    images_root = settings.DATA_DIR / "images"
    new_dirs = [] if images_root.exists() else [images_root]
    done = len(rows)

    def on_file(record: UploadFile, _ref) -> None:
        nonlocal done
        # A duplicate's line names the image it repeats, which this import did not store.
        if record.outcome == UploadFile.Outcome.ACCEPTED and record.image is not None:
            stored.append(settings.DATA_DIR / record.image.file)
        done += 1
        if progress:
            progress(done, 2 * len(rows))

    try:
        with transaction.atomic():
            sites, items = {}, []
            for source_slug, slug in targets.items():
                site = Site.objects.filter(slug=slug).first()
                if site is None:
                    site = site_create(slug=slug, user=user)
                    new_dirs.insert(0, images_root / slug)
                sites[source_slug] = site
                mine = [
                    (r, p) for r, p in zip(rows, extracted, strict=True) if r["site"] == source_slug
                ]
                upload = upload_create(
                    site=site,
                    source=Upload.Source.CLI if user is None else Upload.Source.WEB,
                    user=user,
                )
                upload = upload_process(
                    upload=upload,
                    sources=[Source(path=p, name=r["file"]) for r, p in mine],
                    on_file=on_file,
                )
                # Report lines are known by their position in the upload, not by name.
                records = {
                    rec.index: rec
                    for rec in UploadFile.objects.filter(upload=upload).select_related("image")
                }
                for index, (row, _) in enumerate(mine, 1):
                    record = records.get(index)
                    if record is None or record.outcome != UploadFile.Outcome.ACCEPTED:
                        what = record.outcome if record else "not ingested"
                        reason = f": {record.reason}" if record and record.reason else ""
                        raise _refuse(row["file"], f"{what} on ingest into site {slug}{reason}")
                    if pixel_sha256(settings.DATA_DIR / record.image.file) != row["pixel_sha256"]:
                        raise _refuse(row["file"], "its pixels changed on ingest")
                    items.append(
                        {
                            "image": record.image_id,
                            "site": slug,
                            "sex": row["sex"],
                            "curated_age_days": row["curated_age_days"],
                            "sha256": record.image.sha256,
                        }
                    )
            version = _record_set(
                manifest=manifest,
                items=items,
                sites=sites,
                name=name,
                user=user,
                signature=signature,
            )
    except BaseException:
        for file in stored:
            file.unlink(missing_ok=True)
        for folder in new_dirs:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return version


def _record_set(
    *,
    manifest: dict,
    items: list[dict],
    sites: dict[str, Site],
    name: str,
    user,
    signature: dict,
) -> ValidationSetVersion:
    definition = {k: v for k, v in (manifest.get("definition") or {}).items() if k != "sites"}
    keys = "validation_set version manifest_sha256 files_sha256 items frozen_at exported_at"
    summary = {key: manifest.get(key) for key in [*keys.split(), "portal_version"]}
    summary["sites"] = {source: site.slug for source, site in sites.items()}
    summary["signature"] = signature
    created = ValidationSet.objects.create(
        name=name,
        description=(
            f"Imported from {manifest['validation_set']} v{manifest['version']} "
            f"(exported {manifest.get('exported_at', '?')})"
        ),
        definition=definition,
        created_by=user,
        imported_manifest_sha256=manifest["manifest_sha256"],
    )
    created.sites.set(sites.values())
    provenance = {**(manifest.get("provenance") or {}), "imported_from": summary}
    return services.version_record(
        validation_set=created,
        items=items,
        user=user,
        provenance=provenance,
        action=AuditAction.VALIDATION_SET_IMPORT,
        audit_after={"imported_from": summary},
    )
