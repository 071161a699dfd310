"""Reviews and the audit log refuse change and deletion at every layer: the model, the queryset,
the admin, the API and the database (triggers, tried on SQLite and PostgreSQL in one run)."""

import sqlite3
import uuid
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.models import ProtectedError
from django.db.utils import DatabaseError
from django.test import Client
from rest_framework.test import APIClient

from portal.accounts.models import AuditEvent
from portal.core.models import AppendOnlyError, AppendOnlyModel
from portal.ingest.models import Image
from portal.review.models import Review
from portal.review.services import review_submit
from portal.validation import services as sets
from portal.validation.models import ValidationSetVersion
from tests.conftest import manage
from tests.portal import factories as f

pytestmark = pytest.mark.django_db

# Each append-only record under test, the field a rewrite would change and a value for it.
RECORDS = {"review": (Review, "decision", "exclude"), "audit": (AuditEvent, "action", "x")}


@pytest.fixture
def world(site) -> dict:
    alice = f.user("alice", "reviewer", site)
    image = f.image(site)
    review = review_submit(
        image=image,
        reviewer=alice,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    event = AuditEvent.objects.filter(image_id=image.pk).latest("id")
    return {"site": site, "alice": alice, "image": image, "review": review, "audit": event}


@pytest.fixture(params=sorted(RECORDS))
def record(request, world):
    """(the row, the field, another value) for a review and an audit event in turn."""
    model, field, other = RECORDS[request.param]
    return model.objects.get(pk=world[request.param].pk), field, other


def unchanged(row, field: str) -> bool:
    return getattr(type(row).objects.get(pk=row.pk), field) == getattr(row, field)


def test_the_model_refuses_to_save_an_existing_row_or_delete_one(record):
    row, field, other = record
    before = getattr(row, field)
    setattr(row, field, other)
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.save(update_fields=[field])
    with pytest.raises(AppendOnlyError):
        row.delete()
    assert getattr(type(row).objects.get(pk=row.pk), field) == before


def test_the_queryset_refuses_update_delete_bulk_update_and_upserts(record):
    row, field, other = record
    model = type(row)
    rows = model.objects.filter(pk=row.pk)
    for rewrite in (
        lambda: rows.update(**{field: other}),
        lambda: rows.delete(),
        lambda: model.objects.all().delete(),
        lambda: model._base_manager.filter(pk=row.pk).update(**{field: other}),
        lambda: model._base_manager.all().delete(),
        lambda: model.objects.bulk_update([row], [field]),
        lambda: model.objects.update_or_create(pk=row.pk, defaults={field: other}),
        lambda: model.objects.bulk_create(
            [model(**{**model.objects.values().get(pk=row.pk), field: other})],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=[field],
        ),
    ):
        with pytest.raises(AppendOnlyError):
            rewrite()
    assert unchanged(row, field)
    assert model.objects.count() >= 1


def test_a_related_manager_cannot_delete_an_images_reviews(world):
    with pytest.raises(AppendOnlyError):
        world["image"].reviews.all().delete()
    assert Review.objects.filter(pk=world["review"].pk).exists()


@pytest.mark.parametrize(
    ("kind", "url"), [("review", "/admin/review/review/"), ("audit", "/admin/accounts/auditevent/")]
)
def test_the_admin_shows_them_read_only_and_refuses_change_delete_and_the_delete_action(
    world, admin_user, kind, url
):
    row = world[kind]
    model, field, other = RECORDS[kind]
    client = Client()
    client.force_login(admin_user)

    assert client.get(f"{url}{row.pk}/change/").status_code == 200  # to look at
    assert client.post(f"{url}{row.pk}/change/", {field: other}).status_code == 403
    assert client.get(f"{url}{row.pk}/delete/").status_code == 403
    assert client.post(f"{url}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.get(url)
    assert changelist.status_code == 200
    assert b"delete_selected" not in changelist.content
    client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert client.get(f"{url}add/").status_code == 403

    assert unchanged(row, field)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_the_api_has_no_route_that_changes_or_deletes_them(world, method):
    lead = f.user("lena", "lead", world["site"])
    client = APIClient()
    client.force_authenticate(lead)
    image = world["image"].pk
    for url in (
        f"/api/images/{image}/reviews/",
        f"/api/images/{image}/audit/",
        "/api/audit/",
        "/api/audit/export/",
    ):
        response = getattr(client, method)(url, {"decision": "exclude"}, format="json")
        assert response.status_code == 405, (method, url, response.status_code)
    # A single review or event has no URL at all.
    assert client.get(f"/api/images/{image}/reviews/{world['review'].pk}/").status_code == 404
    assert unchanged(world["review"], "decision")
    assert unchanged(world["audit"], "action")


def test_the_api_has_no_route_that_changes_or_deletes_a_frozen_version(world):
    lead = f.user("lena", "lead", world["site"])
    version = sets.validation_set_freeze(
        validation_set=sets.validation_set_create(name="s", sites=[world["site"]], user=lead),
        user=lead,
    )
    client = APIClient()
    client.force_authenticate(lead)
    for url in ("/api/validation-sets/s/versions/1/", "/api/validation-sets/s/versions/1/items/"):
        for method in ("put", "patch", "delete"):
            response = getattr(client, method)(url, {"item_count": 0}, format="json")
            assert response.status_code == 405, (method, url, response.status_code)
    assert ValidationSetVersion.objects.get(pk=version.pk).item_count == 1


# Committed rows (a transactional test): PostgreSQL refuses to TRUNCATE a table with pending
# foreign key checks before its triggers run. The test's flush then passes the triggers.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", sorted(RECORDS))
def test_the_database_refuses_update_delete_and_truncate_by_sql(world, kind):
    row = world[kind]
    model, field, other = RECORDS[kind]
    table = model._meta.db_table
    statements = [
        f"UPDATE {table} SET {field} = '{other}' WHERE id = {row.pk}",  # noqa: S608
        f"DELETE FROM {table} WHERE id = {row.pk}",  # noqa: S608
        f"DELETE FROM {table}",  # noqa: S608
    ]
    if connection.vendor == "postgresql":
        statements.append(f"TRUNCATE {table}")
    for sql in statements:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert unchanged(row, field)


def test_deleting_an_image_user_or_site_with_decisions_is_refused_and_keeps_them(world):
    for parent in (world["image"], world["alice"], world["site"]):
        with pytest.raises(ProtectedError), transaction.atomic():
            type(parent).objects.get(pk=parent.pk).delete()
    assert Review.objects.filter(pk=world["review"].pk).exists()
    assert Image.objects.filter(pk=world["image"].pk).exists()


def test_deleting_a_user_without_decisions_keeps_their_audit_events(site, django_user_model):
    bob = f.user("bob")
    event = AuditEvent.objects.create(actor=bob, actor_name="bob", action="image.view")
    before = AuditEvent.objects.count()

    django_user_model.objects.get(pk=bob.pk).delete()

    assert AuditEvent.objects.count() >= before  # an audit engineer may log the deletion
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "bob"


# --- The triggers themselves, on a fresh database of each kind, in the same run -------------

# Rows in every append-only table, written as the portal writes them.
SEED = """
from portal.review.services import review_submit
from portal.validation import services as sets
from tests.portal import factories as f

site = f.site("north")
image = f.image(site)
alice = f.user("alice", "reviewer", site)
review_submit(image=image, reviewer=alice, decision="confirm", age_days=None, reason="",
              comment="", expected_revision=0)
sets.validation_set_freeze(validation_set=sets.validation_set_create(name="s", sites=[site]))
from portal.predictions.calibration import calibration_store
calibration_store(version=f.model_version(), true_days=[1000] * 20, predicted_days=[990] * 20,
                  sites=["north"] * 20, coverage=0.9, validation_set="s",
                  validation_set_version=1, manifest_sha256="0" * 64)
"""


def append_only_tables() -> list[str]:
    return sorted(m._meta.db_table for m in apps.get_models() if issubclass(m, AppendOnlyModel))


def migrate_and_seed(database_url: str, data_dir: Path) -> None:
    """`manage.py migrate` into a new database, then rows in every append-only table; then
    `manage.py flush`, which the triggers refuse (the rows are counted afterwards)."""
    for args in (["migrate", "--no-input", "-v", "0"], ["shell", "-c", SEED]):
        done = manage(*args, data_dir=data_dir, database_url=database_url)
        assert done.returncode == 0, done.stderr
    flush = manage("flush", "--no-input", data_dir=data_dir, database_url=database_url)
    assert flush.returncode == 1
    assert "couldn't be flushed" in flush.stderr  # Django's words; the triggers' are chained


def try_rewrites(execute, statements: list[str], count) -> None:
    """Every statement fails with the triggers' reason, and every table keeps its rows."""
    tables = append_only_tables()
    before = {t: count(t) for t in tables}
    assert all(before.values()), f"a table without rows proves nothing: {before}"
    for table in tables:
        for sql in statements:
            # (A TRUNCATE ... CASCADE may be refused by a referencing table's trigger first.)
            with pytest.raises(Exception, match="refused: the table is append-only"):
                execute(sql.format(table=table))
    assert {t: count(t) for t in tables} == before


@pytest.mark.slow  # migrates a fresh database
def test_a_fresh_sqlite_database_refuses_update_and_delete_on_every_append_only_table(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    migrate_and_seed(f"sqlite:///{path}", tmp_path / "data")
    db = sqlite3.connect(path, isolation_level=None)
    try:
        triggers = {
            name
            for (name,) in db.execute("SELECT tbl_name FROM sqlite_master WHERE type='trigger'")
        }
        assert set(append_only_tables()) <= triggers

        def execute(sql: str) -> None:
            db.execute(sql)

        def count(table: str) -> int:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

        try_rewrites(execute, ["UPDATE {table} SET id = id", "DELETE FROM {table}"], count)
    finally:
        db.close()


def _postgres_server() -> dict:
    """The server the tests run against, or the one this machine's CI always has."""
    if connection.vendor == "postgresql":
        db = connection.settings_dict
        return {
            "host": db["HOST"] or "127.0.0.1",
            "port": int(db["PORT"] or 5432),
            "user": db["USER"],
            "password": db["PASSWORD"] or "",
        }
    return {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}


@pytest.mark.slow  # migrates a fresh database
def test_a_fresh_postgresql_database_refuses_update_delete_and_truncate_on_every_append_only_table(
    tmp_path,
):
    server = _postgres_server()
    try:
        admin = psycopg.connect(dbname="postgres", connect_timeout=3, autocommit=True, **server)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {server['host']}:{server['port']}: {exc}")
    name = f"append_only_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        auth = server["user"] + (f":{server['password']}" if server["password"] else "")
        migrate_and_seed(
            f"postgres://{auth}@{server['host']}:{server['port']}/{name}", tmp_path / "data"
        )
        with psycopg.connect(dbname=name, autocommit=True, **server) as db:

            def count(table: str) -> int:
                return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

            try_rewrites(
                db.execute,
                [
                    "UPDATE {table} SET id = id",
                    "DELETE FROM {table}",
                    "TRUNCATE {table} CASCADE",
                ],
                count,
            )
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
