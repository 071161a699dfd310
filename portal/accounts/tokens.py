"""Making and revoking API tokens (`ApiToken`, a core model; portal.core.tokens finds them):
each is an audit event, which is why these services live here, beside the audit log."""

import secrets

from django.db import transaction

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.core.models import ApiToken
from portal.core.tokens import token_digest


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
