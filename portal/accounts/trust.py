"""The other portals whose signed exports this one imports (`TrustedPortal`, a core model): an
administrator adds a portal by its public key (which its operator reads with
`manage.py signing_key`) and may remove it; each change is an audit event, which is why these
services live here, beside the audit log, and not in core."""

from django.db import transaction

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core import signing
from portal.core.models import TrustedPortal


class TrustError(Exception):
    """A change to the trusted portals that cannot be made, with the reason."""


def _summary(portal: TrustedPortal) -> dict:
    return {"public_key": portal.public_key, "key_id": signing.key_id(portal.public_key)}


def trusted_portal_add(*, actor, name: str, public_key: str) -> TrustedPortal:
    """Trust `public_key` under `name`; both must be new here."""
    name = name.strip()
    if not name or len(name) > TrustedPortal._meta.get_field("name").max_length:
        raise TrustError("a trusted portal needs a name of 1 to 100 characters")
    try:
        key = signing.public_key_normalise(public_key)
    except signing.SigningError as exc:
        raise TrustError(str(exc)) from exc
    with transaction.atomic():
        if TrustedPortal.objects.filter(name=name).exists():
            raise TrustError(f"a trusted portal named {name!r} exists")
        if same := TrustedPortal.objects.filter(public_key=key).first():
            raise TrustError(f"that key is trusted already, as {same.name!r}")
        portal = TrustedPortal.objects.create(
            name=name,
            public_key=key,
            added_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            actor=actor, action=AuditAction.TRUSTED_PORTAL_ADD, target=name, after=_summary(portal)
        )
    return portal


def trusted_portal_remove(*, actor, portal: TrustedPortal) -> None:
    """Stop trusting `portal`: its exports no longer import. Sets imported before keep their
    provenance (who signed them then)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.TRUSTED_PORTAL_REMOVE,
            target=portal.name,
            before=_summary(portal),
        )
        portal.delete()


def trusted_portal_for_key(*, public_key: str) -> TrustedPortal | None:
    return TrustedPortal.objects.filter(public_key=public_key).first()
