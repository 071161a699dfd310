"""API tokens are kept as a sha256 of the key: the key works, the database never holds it."""

import hashlib
import importlib

import pytest
from django.apps import apps
from django.db import connection
from rest_framework.test import APIClient

from portal.accounts.tokens import token_create
from portal.core.models import ApiToken
from tests.conftest import manage
from tests.portal import factories

pytestmark = pytest.mark.django_db


def _get(key: str):
    return APIClient().get("/api/sites/", HTTP_AUTHORIZATION=f"Token {key}")


def _database_text() -> str:
    """Every value of every token and audit row, as text."""
    rows = list(ApiToken.objects.values_list()) + list(
        apps.get_model("accounts", "AuditEvent").objects.values_list()
    )
    return repr(rows)


def test_a_new_token_works_and_the_database_holds_only_its_hash() -> None:
    ana = factories.user("ana")
    token, key = token_create(actor=None, user=ana, name="export script")
    assert len(key) >= 43  # 256 bits
    assert _get(key).status_code == 200
    assert key not in _database_text()
    assert token.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]


def test_a_wrong_token_answers_401_with_www_authenticate_and_counts_toward_the_throttle(
    settings,
) -> None:
    settings.LOGIN_THROTTLE = {
        "MAX_FAILURES": 3,
        "MAX_FAILURES_PER_ADDRESS": 2,
        "WINDOW_SECONDS": 60,
    }
    ana = factories.user("ana")
    _, key = token_create(actor=None, user=ana)
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    for _ in range(2):
        response = _get(wrong)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Token"
    # The address is throttled now: even the right key waits.
    assert _get(key).status_code == 429


def test_a_token_of_an_inactive_user_answers_401() -> None:
    ana = factories.user("ana")
    _, key = token_create(actor=None, user=ana)
    ana.is_active = False
    ana.save()
    assert _get(key).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_token_create_command_prints_the_key_once_and_stores_its_hash(data_dir) -> None:
    factories.user("ana")
    result = manage("token_create", "ana", "--name", "pacs", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert _get(key).status_code == 200
    assert key not in _database_text()
    assert ApiToken.objects.get().name == "pacs"
    assert manage("token_create", "nobody", data_dir=data_dir).returncode == 1


def test_admin_shows_a_new_key_once_and_keeps_its_hash(client, admin_user) -> None:
    ana = factories.user("ana")
    client.force_login(admin_user)
    response = client.post("/admin/core/apitoken/add/", {"user": ana.pk, "name": "ci"}, follow=True)
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    key = next(m for m in messages if "shown only now" in m).rsplit(" ", 1)[1]
    assert _get(key).status_code == 200
    assert key not in _database_text()
    page = client.get(f"/admin/core/apitoken/{ApiToken.objects.get().pk}/change/")
    assert key not in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_migration_hashes_plain_tokens_so_their_keys_keep_working() -> None:
    """A database from before: DRF's authtoken table with a key in plain text."""
    ana = factories.user("ana")
    plain = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp "
            "with time zone NOT NULL, user_id bigint NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [plain, "2025-01-02 03:04:05+00:00", ana.pk],
        )
    migration = importlib.import_module("portal.core.migrations.0002_hash_plain_tokens")
    with connection.schema_editor() as editor:
        migration.hash_plain_tokens(apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get()
    assert (token.user, token.created_at.year) == (ana, 2025)
    assert _get(plain).status_code == 200
    assert plain not in _database_text()
