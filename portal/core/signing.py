"""This portal's Ed25519 signing key, and detached signatures made and checked with it.

The key is made on first use and kept, owner-only (0600), in `settings.SIGNING_KEY_FILE` (PEM,
PKCS#8; by default `signing_key.pem` in the data folder); `backup` and `restore` carry it, so a
restored portal signs as the same portal. A public key is written `ed25519:<base64>`: the
standard base64 (with padding) of its 32 raw bytes; its key id is the first 16 hex digits of
their sha256, a short name to show beside it.
"""

import base64
import binascii
import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings

PREFIX = "ed25519:"
ALGORITHM = "ed25519"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class SigningError(Exception):
    """A key or signature that cannot be used, with the reason."""


class BadSignature(SigningError):
    """A signature that does not verify over the bytes it claims to sign."""


def key_path() -> Path:
    """Where this portal's private key lives (PORTAL_SIGNING_KEY_FILE, else the data folder)."""
    return Path(settings.SIGNING_KEY_FILE or settings.DATA_DIR / "signing_key.pem")


def _create(path: Path) -> None:
    """Write a new key owner-only under a temporary name, then link it into place: two
    processes starting at once end up with the one key that was linked first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def private_key(*, create: bool = True) -> Ed25519PrivateKey:
    """This portal's key, made now if there is none yet (and `create`). A key file others can
    read is refused, as ssh refuses one: whoever reads it can sign as this portal."""
    path = key_path()
    if not path.exists():
        if not create:
            raise SigningError(f"no signing key at {path}")
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningError(
            f"signing key {path} is readable by others (mode {mode:04o}): `chmod 600` it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"signing key {path} is not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"signing key {path} is not an Ed25519 key")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    return PREFIX + base64.b64encode(key.public_bytes(*_RAW)).decode()


def public_key_parse(text: str) -> Ed25519PublicKey:
    """`ed25519:<base64 of 32 bytes>` (surrounding space ignored), or SigningError."""
    value = text.strip() if isinstance(text, str) else ""
    if not value.startswith(PREFIX):
        raise SigningError(f"a public key is written {PREFIX}<base64>, not {value[:20]!r}")
    try:
        raw = base64.b64decode(value[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SigningError("the public key is not valid base64") from exc
    if len(raw) != 32:
        raise SigningError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_normalise(text: str) -> str:
    """The one spelling of a public key, to store and compare."""
    return public_key_text(public_key_parse(text))


def key_id(public_key: str) -> str:
    raw = public_key_parse(public_key).public_bytes(*_RAW)
    return hashlib.sha256(raw).hexdigest()[:16]


def own_public_key() -> str:
    return public_key_text(private_key().public_key())


def sign(data: bytes) -> bytes:
    """A detached signature of `data` by this portal, as the JSON bytes of
    `{"algorithm": "ed25519", "public_key": "ed25519:...", "key_id": "...", "signature": b64}`."""
    key = private_key()
    public = public_key_text(key.public_key())
    document = {
        "algorithm": ALGORITHM,
        "public_key": public,
        "key_id": key_id(public),
        "signature": base64.b64encode(key.sign(data)).decode(),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def verify(data: bytes, signature: bytes) -> str:
    """The public key that signed `data`, if `signature` (as `sign` writes it) verifies;
    BadSignature otherwise, whatever is wrong with it. Whether that key is trusted is the
    caller's question."""
    try:
        document = json.loads(signature)
        algorithm, public = document["algorithm"], document["public_key"]
        raw = base64.b64decode(document["signature"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise BadSignature("the signature file is unreadable") from exc
    if algorithm != ALGORITHM:
        raise BadSignature(f"signature algorithm {str(algorithm)[:20]!r} is not {ALGORITHM}")
    try:
        key = public_key_parse(public)
    except SigningError as exc:
        raise BadSignature(f"the signer's public key is malformed ({exc})") from exc
    try:
        key.verify(raw, data)
    except InvalidSignature as exc:
        raise BadSignature("the signature does not verify over these bytes") from exc
    return public_key_text(key)
