"""API tokens kept as a sha256 of the key: the key is high-entropy (256 bits), so a plain hash
is enough (no salt or slow hash, which only help against guessable passwords), and lookups stay
one indexed query."""

import hashlib
import hmac
import secrets

from django.db import transaction

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core.models import ApiToken


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, actor, user, name: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`; returns it with its key, which is stored nowhere."""
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=key[:8], key_sha256=token_digest(key)
        )
        audit_record(
            actor=actor,
            action=AuditAction.TOKEN_CREATE,
            target=user.get_username(),
            after={"name": name},
        )
    return token, key


def token_revoke(*, actor, token: ApiToken) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.TOKEN_REVOKE,
            target=token.user.get_username(),
            before={"name": token.name, "prefix": token.prefix},
        )
        token.delete()


def token_find(*, key: str) -> ApiToken | None:
    """The token whose key this is, or None."""
    digest = token_digest(key)
    token = ApiToken.objects.select_related("user").filter(key_sha256=digest).first()
    # The lookup already matched; the constant-time compare keeps the check itself free of
    # timing differences should the lookup ever change (a prefix search, say).
    if token is None or not hmac.compare_digest(token.key_sha256, digest):
        return None
    return token
