"""The client's address, the one home for it: login throttling (portal.core.login_throttle) and
the API's rate limits (portal.core.throttles) both count by it.

`X-Forwarded-For` is read only when the connection comes from a proxy in
`PORTAL_TRUSTED_PROXIES` (CIDR networks): anyone else could write any address there and so
escape every per-address count. From a trusted peer the header is read right to left, skipping
addresses in trusted networks (our proxies appending), and the first address that is not
trusted is the client; entries further left were written by the client and are never believed.
`PORTAL_NUM_PROXIES`, when set, also caps how many entries from the right are read."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core import checks
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(value: str) -> tuple[Network, ...]:
    """`PORTAL_TRUSTED_PROXIES`: comma-separated networks or single addresses. A bad entry is
    an error that names it (a typo must not silently trust nobody, or everybody)."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(
                f"PORTAL_TRUSTED_PROXIES: {entry!r} is not a network or address ({exc})"
            ) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(value: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(",".join(value))


def trusted_networks() -> tuple[Network, ...]:
    return _networks(tuple(settings.PORTAL_TRUSTED_PROXIES))


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is still that IPv4 client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The address that failed logins and API rates are counted by."""
    remote = request.META.get("REMOTE_ADDR", "")
    networks = trusted_networks()
    peer = _address(remote)
    if not is_trusted(peer, networks):
        return str(peer) if peer is not None else remote
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if settings.PORTAL_NUM_PROXIES:
        hops = hops[-settings.PORTAL_NUM_PROXIES :]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # garbage: believe nothing to its left
            break
        client = address
        if not is_trusted(address, networks):
            break
    return str(client)


class UntrustedForwardedHeadersMiddleware:
    """Drops `X-Forwarded-Proto` and `X-Forwarded-Host` from a peer outside
    `PORTAL_TRUSTED_PROXIES`: Django believes them (SECURE_PROXY_SSL_HEADER, secure cookies, the
    HTTPS redirect, CSRF's origin check), so only our own proxies may set them."""

    HEADERS = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if not is_trusted(_address(request.META.get("REMOTE_ADDR", "")), trusted_networks()):
            for header in self.HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)


def proxy_settings_check(app_configs=None, **kwargs) -> list:
    """`manage.py check` (and every start of the web server): a bad network is an error, and
    `PORTAL_NUM_PROXIES` without `PORTAL_TRUSTED_PROXIES` a warning, since it then does nothing."""
    try:
        networks = trusted_networks()
    except ValueError as exc:
        return [checks.Error(str(exc), id="portal.E001")]
    if settings.PORTAL_NUM_PROXIES and not networks:
        return [
            checks.Warning(
                "PORTAL_NUM_PROXIES is set but PORTAL_TRUSTED_PROXIES is empty: X-Forwarded-For "
                "is ignored and clients are counted by the address that connects",
                hint="set PORTAL_TRUSTED_PROXIES to the proxies' networks (docs/production.md)",
                id="portal.W001",
            )
        ]
    return []
