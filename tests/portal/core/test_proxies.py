"""The client's address: X-Forwarded-For is believed only from PORTAL_TRUSTED_PROXIES, read
right to left, and the same address counts failed logins and the API's rates."""

import pytest
from django.core import checks
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory

from portal.core.proxies import (
    UntrustedForwardedHeadersMiddleware,
    client_address,
    parse_networks,
    proxy_settings_check,
)
from portal.core.throttles import AnonThrottle, UserThrottle


def _request(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = []
    settings.PORTAL_NUM_PROXIES = 1  # the old setting alone trusts nobody any more
    assert client_address(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_forwarded_for_is_ignored_from_a_peer_outside_the_trusted_networks(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["172.31.250.0/24"]
    assert client_address(_request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_from_a_trusted_proxy_the_right_most_untrusted_address_is_the_client(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["172.31.250.0/24", "10.0.0.0/8"]
    # The client wrote "1.2.3.4"; the host's proxy appended the client's real address, and
    # the compose network's gateway was appended by nginx.
    request = _request("172.31.250.10", "1.2.3.4, 198.51.100.20, 172.31.250.1")
    assert client_address(request) == "198.51.100.20"
    assert client_address(_request("10.1.2.3", "198.51.100.21")) == "198.51.100.21"
    assert client_address(_request("10.1.2.3")) == "10.1.2.3"  # no header: the peer


def test_num_proxies_caps_how_far_left_a_trusted_header_is_read(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.PORTAL_NUM_PROXIES = 1
    # Only the last entry was written by our proxy: "10.9.9.9" further left is the client's.
    assert client_address(_request("10.0.0.2", "10.9.9.9, 10.0.0.5")) == "10.0.0.5"


def test_garbage_in_the_header_is_not_believed(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(_request("10.0.0.2", "198.51.100.1, not-an-ip")) == "10.0.0.2"


def test_ipv4_mapped_and_ipv6_peers(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    assert client_address(_request("::ffff:10.0.0.2", "198.51.100.1")) == "198.51.100.1"
    assert client_address(_request("fd00::5", "2001:db8::1")) == "2001:db8::1"


def test_drf_throttles_count_by_the_same_address(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    factory = APIRequestFactory()
    spoofed = factory.get("/", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="1.1.1.1")
    proxied = factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.3")
    for throttle in (AnonThrottle(), UserThrottle()):
        assert throttle.get_ident(spoofed) == "203.0.113.7"
        assert throttle.get_ident(proxied) == "198.51.100.3"


def test_a_bad_network_is_an_error_naming_it(settings) -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks("10.0.0.0/8, 10.0.0.0/33")
    settings.PORTAL_TRUSTED_PROXIES = ["nonsense"]
    assert [m.id for m in proxy_settings_check()] == ["portal.E001"]
    settings.PORTAL_TRUSTED_PROXIES = []
    settings.PORTAL_NUM_PROXIES = 1
    (warning,) = proxy_settings_check()
    assert warning.level == checks.WARNING
    assert "PORTAL_TRUSTED_PROXIES is empty" in warning.msg


def test_forwarded_proto_and_host_count_only_from_a_trusted_proxy(settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["172.31.250.0/24"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    seen = []
    middleware = UntrustedForwardedHeadersMiddleware(lambda request: seen.append(request))
    for remote in ("203.0.113.7", "172.31.250.10"):
        request = RequestFactory().get(
            "/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="x"
        )
        middleware(request)
    outsider, proxied = seen
    assert not outsider.is_secure()
    assert "HTTP_X_FORWARDED_HOST" not in outsider.META
    assert proxied.is_secure()
    assert proxied.META["HTTP_X_FORWARDED_HOST"] == "x"
