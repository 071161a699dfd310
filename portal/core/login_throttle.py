"""Failed-login counting in Django's cache: per user name and per client address, in a fixed
window from the first failure (settings.LOGIN_THROTTLE). Every way in (the login form, the admin,
HTTP basic auth, API tokens) counts against the same numbers."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle


def client_address(request: HttpRequest) -> str:
    """The caller's address; behind `NUM_PROXIES` proxies, read from X-Forwarded-For as DRF does."""
    return BaseThrottle().get_ident(request)


def _keys(*, request: HttpRequest | None, username: str | None) -> list[tuple[str, int]]:
    """(cache key, allowed failures) for each counter this attempt falls under. User names are
    hashed: keys stay short and the cache holds no names."""
    limits = settings.LOGIN_THROTTLE
    keys = []
    if username:
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append((f"login-fail:user:{digest}", limits["MAX_FAILURES"]))
    if request is not None and (address := client_address(request)):
        keys.append((f"login-fail:addr:{address}", limits["MAX_FAILURES_PER_ADDRESS"]))
    return keys


def login_wait_seconds(*, request: HttpRequest | None, username: str | None) -> int:
    """0 when the attempt may go ahead, else how long until the window that refuses it ends."""
    window = settings.LOGIN_THROTTLE["WINDOW_SECONDS"]
    wait = 0
    for key, limit in _keys(request=request, username=username):
        if (cache.get(key) or 0) >= limit:
            since = cache.get(f"{key}:since") or time.time()
            wait = max(wait, int(since + window - time.time()) + 1)
    return wait


def login_failure_record(*, request: HttpRequest | None, username: str | None) -> None:
    window = settings.LOGIN_THROTTLE["WINDOW_SECONDS"]
    for key, _ in _keys(request=request, username=username):
        # add() never moves an existing expiry and incr() keeps it: the window is fixed.
        cache.add(f"{key}:since", time.time(), timeout=window)
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.set(key, 1, timeout=window)


def login_success_record(*, username: str) -> None:
    """A good password clears the name's count; the address's count stays until its window ends
    (logging in to one's own account must not reset guesses at others)."""
    for key, _ in _keys(request=None, username=username):
        cache.delete_many([key, f"{key}:since"])
