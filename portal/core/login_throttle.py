"""Failed-login counting in Django's cache, in a fixed window from the first failure
(settings.LOGIN_THROTTLE), with three counters:

- per (client address, user name), small: one person's typos lock out that name from that
  address only, never the colleagues behind the same hospital NAT;
- per user name from every address, larger: guessing one name from many addresses;
- per client address, much larger still: guessing many names from one address.

Every way in (the login form, the admin, HTTP basic auth, API tokens) counts against the same
numbers. The cache must be shared by every web process (settings.CACHES: Redis whenever a
REDIS_URL is given), or each process would keep a count of its own."""

import hashlib
import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from portal.core.proxies import client_address


def _address_key(address: str) -> str:
    """An IPv6 client holds a whole /64 (its host bits are its own to pick): count the /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _keys(*, request: HttpRequest | None, username: str | None) -> list[tuple[str, int]]:
    """(cache key, allowed failures) for each counter this attempt falls under. User names are
    hashed: keys stay short and the cache holds no names."""
    limits = settings.LOGIN_THROTTLE
    address = _address_key(client_address(request)) if request is not None else ""
    keys = []
    if username:
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append((f"login-fail:user:{digest}", limits["MAX_FAILURES"]))
        if address:
            per_pair = limits.get("MAX_FAILURES_PER_ADDRESS_USER", limits["MAX_FAILURES"])
            keys.append((f"login-fail:addr-user:{address}:{digest}", per_pair))
    if address:
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


def login_success_record(*, request: HttpRequest | None, username: str) -> None:
    """A good password clears the name's counts; the address's count stays until its window
    ends (logging in to one's own account must not reset guesses at others)."""
    for key, _ in _keys(request=request, username=username):
        if not key.startswith("login-fail:addr:"):
            cache.delete_many([key, f"{key}:since"])
