"""What an import believes before it keeps anything: who signed the export and whether this
portal trusts them, and that manifest.json, its definition and every row hold values this
portal would have accepted itself (an age as a review decision takes it, a known sex and
status). Each refusal names the file or field and the reason
(docs/validation.md, "Signing and trust")."""

import datetime as dt
import re
import zipfile

from inference_worker.ages import AGE_LIMIT_DAYS, REPORTED_SEXES, SEXES
from portal.accounts.trust import trusted_portal_for_key
from portal.core import signing
from portal.ingest.models import ReviewStatus
from portal.validation.exports import SIGNATURE_FILE
from portal.validation.services import ELIGIBLE_STATUSES, ValidationSetError

HEX64 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_MAX = 64 * 1024
UNSIGNED = {"status": "unsigned"}


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def signature_check(zf: zipfile.ZipFile, manifest_bytes: bytes, *, allow_unsigned: bool) -> dict:
    """The export's signature provenance: `{"status": "signed", "signed_by": NAME,
    "public_key": ..., "key_id": ...}` when a trusted portal signed these exact manifest.json
    bytes, `{"status": "unsigned"}` for an unsigned export when `allow_unsigned`. Anything
    else is refused: an unsigned export (without `allow_unsigned`), a signature that does not
    verify (even with it: that is an altered export, not an unsigned one), an untrusted key."""
    try:
        info = zf.getinfo(SIGNATURE_FILE)
    except KeyError:
        if allow_unsigned:
            return dict(UNSIGNED)
        raise ValidationSetError(
            f"export is not signed (no {SIGNATURE_FILE}): import it with --allow-unsigned "
            "only if you know where it came from"
        ) from None
    try:
        if info.file_size > _SIGNATURE_MAX:
            raise signing.BadSignature(f"{SIGNATURE_FILE} is too large")
        try:
            document = zf.read(info)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise signing.BadSignature(f"{SIGNATURE_FILE} is corrupt in the ZIP") from exc
        public_key = signing.verify(manifest_bytes, document)
    except signing.BadSignature as exc:
        raise ValidationSetError(
            f"signature does not verify: the manifest was altered after signing, or the "
            f"signature is damaged ({exc})"
        ) from exc
    key_id = signing.key_id(public_key)
    trusted = trusted_portal_for_key(public_key=public_key)
    if trusted is None:
        raise ValidationSetError(
            f"signed by a portal that is not trusted (key {public_key}, key id {key_id}): "
            "if you trust it, `manage.py trusted_portal add NAME KEY` first"
        )
    return {
        "status": "signed",
        "signed_by": trusted.name,
        "public_key": public_key,
        "key_id": key_id,
    }


def manifest_check(manifest) -> None:
    """manifest.json's fields have the types an export writes."""
    if not isinstance(manifest, dict):
        raise ValidationSetError(f"manifest.json: must be an object, not {type(manifest).__name__}")
    required = {"validation_set", "version", "manifest_sha256", "items", "files_sha256"}
    if missing := sorted(required - manifest.keys()):
        raise ValidationSetError(f"manifest.json: lacks {', '.join(missing)}")
    if not isinstance(manifest["validation_set"], str):
        raise ValidationSetError("manifest.json: validation_set must be a name (text)")
    for field in ("version", "items"):
        if not _int(manifest[field]) or manifest[field] < (1 if field == "version" else 0):
            raise ValidationSetError(f"manifest.json: {field} must be a whole number")
    for field in ("manifest_sha256", "files_sha256"):
        if not (isinstance(manifest[field], str) and HEX64.fullmatch(manifest[field])):
            raise ValidationSetError(f"manifest.json: {field} must be a sha256 (64 hex digits)")
    for field in ("frozen_at", "exported_at", "portal_version"):
        if manifest.get(field) is not None and not isinstance(manifest[field], str):
            raise ValidationSetError(f"manifest.json: {field} must be text")
    if manifest.get("provenance") is not None and not isinstance(manifest["provenance"], dict):
        raise ValidationSetError("manifest.json: provenance must be an object")
    definition_check(manifest.get("definition"))


def definition_check(definition) -> None:
    """A set's definition as `services.validation_set_create` makes it (plus the version's
    `sites`): an object of known keys, each of its type, or absent."""
    where = "manifest.json: definition"
    if definition is None:
        return
    if not isinstance(definition, dict):
        raise ValidationSetError(f"{where} must be an object, not {type(definition).__name__}")
    known = {
        "statuses",
        "sex",
        "min_age_days",
        "max_age_days",
        "uploaded_after",
        "uploaded_before",
        "blind_only",
        "sites",
    }
    if unknown := sorted(str(k) for k in definition.keys() - known):
        raise ValidationSetError(f"{where} has unknown keys: {', '.join(unknown)[:200]}")
    statuses = definition.get("statuses")
    if statuses is not None:
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
            raise ValidationSetError(f"{where}.statuses must be a list of review statuses")
        for status in statuses:
            if status not in ReviewStatus.values:
                raise ValidationSetError(
                    f"{where}.statuses: {status[:40]!r} is not a known review status"
                )
            if status not in ELIGIBLE_STATUSES:
                raise ValidationSetError(
                    f"{where}.statuses: {status!r} is not a settled age "
                    f"(expected {', '.join(sorted(ELIGIBLE_STATUSES))})"
                )
    if definition.get("sex") not in (None, "", *REPORTED_SEXES):
        raise ValidationSetError(f"{where}.sex must be {', '.join(REPORTED_SEXES)} or null")
    bounds = []
    for field in ("min_age_days", "max_age_days"):
        value = definition.get(field)
        if value is not None and not (_int(value) and 0 <= value < AGE_LIMIT_DAYS):
            raise ValidationSetError(
                f"{where}.{field} must be a whole number of days from 0 to {AGE_LIMIT_DAYS - 1}"
            )
        bounds.append(value)
    if None not in bounds and bounds[0] > bounds[1]:
        raise ValidationSetError(f"{where}: min_age_days is above max_age_days")
    for field in ("uploaded_after", "uploaded_before"):
        value = definition.get(field)
        if value is None:
            continue
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ValidationSetError(f"{where}.{field} must be a date (YYYY-MM-DD)") from None
    if not isinstance(definition.get("blind_only", False), bool):
        raise ValidationSetError(f"{where}.blind_only must be true or false")
    sites = definition.get("sites")
    if sites is not None and not (
        isinstance(sites, list) and all(isinstance(s, str) for s in sites)
    ):
        raise ValidationSetError(f"{where}.sites must be a list of site names")


def row_values_check(row: dict, where: str) -> None:
    """A row's sex and curated age as a review decision would take them: a known sex, an age
    of 0 days to under 18 years (`inference_worker.ages.AGE_LIMIT_DAYS`)."""
    if row["sex"] not in SEXES:
        raise ValidationSetError(
            f"{where}: sex {str(row['sex'])[:10]!r} is not one of {', '.join(SEXES)}"
        )
    age = row["curated_age_days"]
    if not 0 <= age < AGE_LIMIT_DAYS:
        raise ValidationSetError(
            f"{where}: curated_age_days {age} is out of scope (0 to under 18 years: "
            f"0 to {AGE_LIMIT_DAYS - 1} days)"
        )
