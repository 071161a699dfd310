"""Failed logins: spoofed X-Forwarded-For from outside the proxies escapes nothing, and one
person's mistakes lock out that person only, not everyone behind the same address (NAT)."""

import base64

import pytest
from rest_framework.test import APIClient

from tests.portal import factories

pytestmark = pytest.mark.django_db

PASSWORD = factories.PASSWORD


@pytest.fixture
def limits(settings) -> dict:
    settings.LOGIN_THROTTLE = {
        "MAX_FAILURES_PER_ADDRESS_USER": 10,
        "MAX_FAILURES": 50,
        "MAX_FAILURES_PER_ADDRESS": 100,
        "WINDOW_SECONDS": 900,
    }
    return settings.LOGIN_THROTTLE


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_spoofed_forwarded_addresses_from_an_untrusted_client_are_still_throttled(
    client, limits, settings
) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.PORTAL_NUM_PROXIES = 1
    factories.user("ana")
    statuses = []
    for i in range(25):
        response = client.post(
            "/accounts/login/",
            {"username": "ana", "password": "wrong"},
            REMOTE_ADDR="203.0.113.7",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
        )
        statuses.append(response.status_code)
    limit = limits["MAX_FAILURES_PER_ADDRESS_USER"]
    assert statuses == [200] * limit + [429] * (25 - limit)


def test_a_trusted_proxy_counts_each_client_by_its_forwarded_address(limits, settings) -> None:
    settings.PORTAL_TRUSTED_PROXIES = ["10.0.0.0/8"]
    factories.user("ana")
    api = APIClient(REMOTE_ADDR="10.0.0.2")
    for _ in range(limits["MAX_FAILURES_PER_ADDRESS_USER"]):
        response = api.get(
            "/api/sites/",
            HTTP_AUTHORIZATION=_basic("ana", "wrong"),
            HTTP_X_FORWARDED_FOR="198.51.100.1",
        )
        assert response.status_code == 401
    locked = api.get(
        "/api/sites/",
        HTTP_AUTHORIZATION=_basic("ana", PASSWORD),
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    assert locked.status_code == 429
    # Ana from elsewhere, through the same proxy, is not locked out by that address's typos.
    other = api.get(
        "/api/sites/",
        HTTP_AUTHORIZATION=_basic("ana", PASSWORD),
        HTTP_X_FORWARDED_FOR="198.51.100.2",
    )
    assert other.status_code == 200


def test_one_users_failures_behind_a_nat_lock_out_that_user_only(client, limits) -> None:
    factories.user("ana")
    factories.user("ben")
    nat = {"REMOTE_ADDR": "192.0.2.10"}
    for _ in range(20):
        client.post("/accounts/login/", {"username": "ana", "password": "wrong"}, **nat)

    ben = client.post("/accounts/login/", {"username": "ben", "password": PASSWORD}, **nat)
    assert ben.status_code == 302
    client.logout()
    ana = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD}, **nat)
    assert ana.status_code == 429


def test_an_address_guessing_many_names_is_stopped_at_the_address_limit(client, limits) -> None:
    factories.user("ana")
    nat = {"REMOTE_ADDR": "192.0.2.11"}
    per_address = limits["MAX_FAILURES_PER_ADDRESS"]
    for i in range(per_address):
        client.post("/accounts/login/", {"username": f"user{i}", "password": "wrong"}, **nat)
    assert (
        client.post(
            "/accounts/login/", {"username": "ana", "password": PASSWORD}, **nat
        ).status_code
        == 429
    )
    other = client.post(
        "/accounts/login/", {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="192.0.2.12"
    )
    assert other.status_code == 302


def test_one_name_guessed_from_many_addresses_is_locked_at_the_name_limit(client, limits) -> None:
    factories.user("ana")
    for i in range(limits["MAX_FAILURES"]):
        client.post(
            "/accounts/login/",
            {"username": "ana", "password": "wrong"},
            REMOTE_ADDR=f"198.51.100.{i}",
        )
    response = client.post(
        "/accounts/login/", {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="192.0.2.99"
    )
    assert response.status_code == 429


def test_defaults_keep_the_address_limit_far_above_the_per_person_limit() -> None:
    from django.conf import settings

    limits = settings.LOGIN_THROTTLE
    assert limits["MAX_FAILURES_PER_ADDRESS"] >= 10 * limits["MAX_FAILURES_PER_ADDRESS_USER"]
    assert limits["MAX_FAILURES"] > limits["MAX_FAILURES_PER_ADDRESS_USER"]
