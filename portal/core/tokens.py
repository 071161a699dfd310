"""API tokens kept as a sha256 of the key: the key is high-entropy (256 bits), so a plain hash
is enough (no salt or slow hash, which only help against guessable passwords), and lookups stay
one indexed query. Tokens are made and revoked (each an audit event) by
portal.accounts.tokens."""

import hashlib
import hmac

from portal.core.models import ApiToken


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_find(*, key: str) -> ApiToken | None:
    """The token whose key this is, or None."""
    digest = token_digest(key)
    token = ApiToken.objects.select_related("user").filter(key_sha256=digest).first()
    # The lookup already matched; the constant-time compare keeps the check itself free of
    # timing differences should the lookup ever change (a prefix search, say).
    if token is None or not hmac.compare_digest(token.key_sha256, digest):
        return None
    return token
