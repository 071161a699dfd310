"""Production settings and the defences that run in every environment: login throttling, 401s
with `WWW-Authenticate`, capped pages, the content security policy, Swagger UI from the portal."""

import base64
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from portal.accounts.tokens import token_create
from tests.conftest import ROOT
from tests.portal import factories

PASSWORD = factories.PASSWORD


def _check_deploy(data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environ.update(PORTAL_DATA_DIR=str(data_dir), DJANGO_ENV="production", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check(tmp_path: Path) -> None:
    result = _check_deploy(
        tmp_path,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="portal.example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_secret_or_hosts(tmp_path: Path, missing) -> None:
    env = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "a.example"}
    del env[missing]
    result = _check_deploy(tmp_path, **env)
    assert result.returncode != 0
    assert f"DJANGO_ENV=production needs {missing}" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_password_validators_refuse_numeric_and_common_passwords() -> None:
    for weak in ("12345678901", "password123"):
        with pytest.raises(ValidationError):
            validate_password(weak)


@pytest.fixture
def throttle(settings) -> dict:
    settings.LOGIN_THROTTLE = {
        "MAX_FAILURES": 3,
        "MAX_FAILURES_PER_ADDRESS": 5,
        "WINDOW_SECONDS": 1,
    }
    return settings.LOGIN_THROTTLE


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.django_db
def test_bad_basic_credentials_answer_401_with_www_authenticate() -> None:
    factories.user("ana")
    response = APIClient().get("/api/sites/", HTTP_AUTHORIZATION=_basic("ana", "wrong"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")


@pytest.mark.django_db
def test_bad_token_answers_401_with_www_authenticate() -> None:
    response = APIClient().get("/api/sites/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_good_basic_credentials_and_token_still_work() -> None:
    ana = factories.user("ana")
    assert (
        APIClient().get("/api/sites/", HTTP_AUTHORIZATION=_basic("ana", PASSWORD)).status_code
        == 200
    )
    _, key = token_create(actor=None, user=ana)
    assert APIClient().get("/api/sites/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


@pytest.mark.django_db
def test_basic_auth_answers_429_after_the_failure_limit_then_recovers(throttle) -> None:
    factories.user("ana")
    api = APIClient()
    for _ in range(throttle["MAX_FAILURES"]):
        assert api.get("/api/sites/", HTTP_AUTHORIZATION=_basic("ana", "wrong")).status_code == 401
    # The right password is refused too while the name is throttled.
    refused = api.get("/api/sites/", HTTP_AUTHORIZATION=_basic("ana", PASSWORD))
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    time.sleep(throttle["WINDOW_SECONDS"] + 0.2)
    assert api.get("/api/sites/", HTTP_AUTHORIZATION=_basic("ana", PASSWORD)).status_code == 200


@pytest.mark.django_db
def test_bad_tokens_are_throttled_per_address(throttle) -> None:
    api = APIClient()
    for _ in range(throttle["MAX_FAILURES_PER_ADDRESS"]):
        assert api.get("/api/sites/", HTTP_AUTHORIZATION="Token bad").status_code == 401
    assert api.get("/api/sites/", HTTP_AUTHORIZATION="Token bad").status_code == 429


@pytest.mark.django_db
def test_login_form_refuses_with_a_wait_after_the_failure_limit(client, throttle) -> None:
    factories.user("ana")
    for _ in range(throttle["MAX_FAILURES"]):
        response = client.post("/accounts/login/", {"username": "ana", "password": "wrong"})
        assert response.status_code == 200
        assert b"correct username and password" in response.content
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins. Wait 1 minute(s)" in response.content
    assert "_auth_user_id" not in client.session
    time.sleep(throttle["WINDOW_SECONDS"] + 0.2)
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session


@pytest.mark.django_db
def test_login_form_throttles_one_address_guessing_many_names(client, throttle) -> None:
    factories.user("ana")
    for i in range(throttle["MAX_FAILURES_PER_ADDRESS"]):
        client.post("/accounts/login/", {"username": f"user{i}", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    assert response.status_code == 429
    # Another address may still log in as ana: her name's own count is untouched.
    other = type(client)(REMOTE_ADDR="10.0.0.9")
    response = other.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.django_db
def test_admin_login_counts_against_the_same_limit(client, throttle) -> None:
    factories.user("ana")
    for _ in range(throttle["MAX_FAILURES"]):
        client.post("/admin/login/", {"username": "ana", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    assert response.status_code == 429


@pytest.mark.django_db
def test_prediction_list_caps_limit_at_200(admin_user) -> None:
    s = factories.site("north")
    version = factories.model_version()
    for _ in range(205):
        factories.prediction(factories.image(s), version, age_days=900)
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get("/api/predictions/", {"limit": 100_000_000})
    assert response.status_code in (200, 400)  # capped, or refused as out of range
    if response.status_code == 200:
        page = response.json()
        assert len(page["results"]) == 200
        assert page["next"]


CSP_DIRECTIVES = {
    "script-src": "'self' 'wasm-unsafe-eval'",
    "worker-src": "'self' blob:",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
}


def _assert_csp(response) -> None:
    policy = dict(
        part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    for name, value in CSP_DIRECTIVES.items():
        assert policy[name] == value


@pytest.mark.django_db
def test_csp_is_on_pages_and_api_responses(client, admin_user) -> None:
    _assert_csp(client.get("/accounts/login/"))
    _assert_csp(APIClient().get("/api/sites/"))
    api = APIClient()
    api.force_authenticate(admin_user)
    _assert_csp(api.get("/api/sites/"))


@pytest.mark.django_db
def test_api_docs_need_login_and_load_nothing_from_another_host(client, admin_user) -> None:
    assert client.get("/api/docs/").status_code in (401, 403)
    client.force_login(admin_user)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert not re.search(r"<script>", html), "an inline script would be blocked by the CSP"
    script = client.get(next(u for u in urls if "script" in u))
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.mark.django_db
def test_healthz_answers_plain_http_on_any_host_behind_the_ssl_redirect(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["portal.example.org"]
    response = client.get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    # Only that path: every other request still goes to HTTPS on an allowed host.
    assert client.get("/accounts/login/", HTTP_HOST="portal.example.org").status_code == 301
    assert client.get("/accounts/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
