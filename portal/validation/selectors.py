"""Reads of validation sets, scoped: a set is visible to users with a role on every one of its
sites (and changed only by the leads of every one of them)."""

from django.db.models import QuerySet

from portal.accounts.selectors import site_scope
from portal.ingest.models import Site
from portal.validation.models import ValidationSet, ValidationSetVersion


class NotFound(LookupError):
    """No such set or version for this user."""


def validation_set_list(*, user) -> QuerySet[ValidationSet]:
    """The sets `user` sees; `None` is the operator at the command line, who sees them all."""
    if user is None:
        return ValidationSet.objects.prefetch_related("sites", "versions")
    # Negated as a subquery: `exclude()` of a superuser's scope (an empty `Q()`, every site)
    # would hide every set from them.
    inside = Site.objects.filter(site_scope(user=user, field="pk")).values("pk")
    outside = Site.objects.exclude(pk__in=inside)
    return ValidationSet.objects.exclude(sites__in=outside).prefetch_related("sites", "versions")


def validation_set_get(*, user, name: str) -> ValidationSet:
    found = validation_set_list(user=user).filter(name=name).first()
    if found is None:
        raise NotFound(f"no validation set {name}")
    return found


def version_get(*, user, name: str, number: int | None = None) -> ValidationSetVersion:
    """`NAME` alone means its latest frozen version."""
    versions = ValidationSetVersion.objects.filter(
        validation_set__in=validation_set_list(user=user), validation_set__name=name
    ).select_related("validation_set")
    version = (
        versions.filter(number=number).first()
        if number is not None
        else versions.order_by("-number").first()
    )
    if version is None:
        which = f"{name}:{number}" if number is not None else f"{name} (no frozen version)"
        raise NotFound(f"no validation set {which}")
    return version


def parse_ref(ref: str) -> tuple[str, int | None]:
    """`NAME[:VERSION]`."""
    name, _, number = ref.partition(":")
    if number and not number.isdigit():
        raise NotFound(f"{ref!r}: the version must be a number")
    return name, int(number) if number else None


def version_data(version: ValidationSetVersion) -> dict:
    return {
        "name": version.validation_set.name,
        "version": version.number,
        "items": version.item_count,
        "manifest_sha256": version.manifest_sha256,
        "definition": version.definition,
        "provenance": version.provenance,
        "frozen_at": version.frozen_at,
        "frozen_by": version.frozen_by.get_username() if version.frozen_by else None,
    }


def import_provenance(version: ValidationSetVersion) -> dict | None:
    """Where an imported version came from and who signed its export: `signature` is
    `{"status": "signed", "signed_by", "public_key", "key_id"}` or `{"status": "unsigned"}`
    (also for imports made before exports were signed). None for a version frozen here."""
    origin = (version.provenance or {}).get("imported_from")
    if not isinstance(origin, dict):
        return None
    return {
        "validation_set": origin.get("validation_set"),
        "version": origin.get("version"),
        "exported_at": origin.get("exported_at"),
        "signature": origin.get("signature") or {"status": "unsigned"},
    }


def signature_text(version: ValidationSetVersion) -> str:
    """`signed by NAME (key ed25519:..., key id ...)`, `unsigned`, or "" when not imported."""
    origin = import_provenance(version)
    if origin is None:
        return ""
    signature = origin["signature"]
    if signature.get("status") != "signed":
        return "unsigned"
    return (
        f"signed by {signature.get('signed_by')} "
        f"(key {signature.get('public_key')}, key id {signature.get('key_id')})"
    )


def validation_set_data(validation_set: ValidationSet) -> dict:
    # Sorted here, so that a list's prefetched versions serve it (no query per set).
    versions = sorted(validation_set.versions.all(), key=lambda v: -v.number)
    return {
        "name": validation_set.name,
        "description": validation_set.description,
        "sites": sorted(s.slug for s in validation_set.sites.all()),
        "definition": validation_set.definition,
        "created_at": validation_set.created_at,
        "versions": [
            {
                "version": v.number,
                "items": v.item_count,
                "manifest_sha256": v.manifest_sha256,
                "frozen_at": v.frozen_at,
            }
            for v in versions
        ],
        # An imported set's first version is the import (None for sets made here).
        "imported": import_provenance(versions[-1]) if versions else None,
    }
