"""Base pieces shared by the domain apps: records that are written once and never changed, API
tokens, and the other portals whose signed exports this one trusts."""

from django.conf import settings
from django.db import migrations, models


class AppendOnlyError(Exception):
    """An append-only record (an audit event, a frozen validation set) is never changed or
    deleted, only added to."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs) -> int:
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be changed")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be deleted")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be changed")

    def bulk_create(self, objs, *args, update_conflicts: bool = False, **kwargs):
        if update_conflicts:  # an upsert rewrites the rows it collides with
            raise AppendOnlyError(f"{self.model.__name__} rows cannot be changed")
        return super().bulk_create(objs, *args, **kwargs)


class AppendOnlyModel(models.Model):
    """A record written once and never changed or deleted, refused at every layer: `save()` of
    an existing row and `delete()` here; `update`, `delete`, `bulk_update` and upserts in the
    queryset (the base manager too, which Django's internals and `_base_manager` use; an
    `update_or_create` that finds a row fails in `save()`); `ReadOnlyAdmin` in the admin; no
    route that changes one in the API; and in the database the triggers of
    `append_only_triggers`, which a subclass's migration must install."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        base_manager_name = "objects"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows cannot be deleted")


def append_only_trigger(table: str) -> migrations.RunPython:
    """The first database half of `AppendOnlyModel` (UPDATE refused, and DELETE on PostgreSQL),
    kept as it was because applied migrations run it; `append_only_triggers` replaces it."""
    name = f"{table}_append_only"
    pg = f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION '{table} is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}();
"""
    sqlite = f"""
CREATE TRIGGER {name} BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;
"""
    drop = {
        "postgresql": f"DROP TRIGGER IF EXISTS {name} ON {table}; "
        f"DROP FUNCTION IF EXISTS {name}();",
        "sqlite": f"DROP TRIGGER IF EXISTS {name};",
    }

    def forward(apps, schema_editor) -> None:
        sql = {"postgresql": pg, "sqlite": sqlite}.get(schema_editor.connection.vendor)
        if sql:
            schema_editor.execute(sql)

    def backward(apps, schema_editor) -> None:
        sql = drop.get(schema_editor.connection.vendor)
        if sql:
            schema_editor.execute(sql)

    return migrations.RunPython(forward, backward)


def append_only_triggers(table: str, *, replaces_first: bool = False) -> migrations.RunPython:
    """A migration operation making `table` append-only in the database: on PostgreSQL row
    triggers refuse UPDATE and DELETE and a statement trigger refuses TRUNCATE; on SQLite
    (which has no TRUNCATE) triggers refuse UPDATE and DELETE. No setting or session variable
    turns them off: only the table's owner can, by altering or dropping them (which the test
    suite's flush does, tests/conftest.py). `replaces_first`: the table has the triggers of
    `append_only_trigger`, which going back restores.

    SQLite drops a table's triggers when Django rebuilds the table to alter it: a migration
    that alters one of these tables must run this again (a test checks every table has them).
    """
    name = f"{table}_append_only"
    refused = f"on {table} refused: the table is append-only"
    pg = [
        f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION USING MESSAGE = TG_OP || ' {refused}'; END;
$$ LANGUAGE plpgsql""",
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"""CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION {name}()""",
        f"""CREATE TRIGGER {name}_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {name}()""",
    ]
    sqlite = [
        f"DROP TRIGGER IF EXISTS {name}",
        f"""CREATE TRIGGER {name} BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'UPDATE {refused}'); END""",
        f"""CREATE TRIGGER {name}_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'DELETE {refused}'); END""",
    ]
    drop = {
        "postgresql": [
            f"DROP TRIGGER IF EXISTS {name}_truncate ON {table}",
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"DROP FUNCTION IF EXISTS {name}()",
        ],
        "sqlite": [f"DROP TRIGGER IF EXISTS {name}_delete", f"DROP TRIGGER IF EXISTS {name}"],
    }

    def forward(apps, schema_editor) -> None:
        for sql in {"postgresql": pg, "sqlite": sqlite}.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql, params=None)

    def backward(apps, schema_editor) -> None:
        for sql in drop.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql, params=None)
        if replaces_first:
            append_only_trigger(table).code(apps, schema_editor)

    return migrations.RunPython(forward, backward)


class ApiToken(models.Model):
    """An API key known only by its sha256 (portal.core.tokens): whoever reads the database, a
    backup or a log cannot use it. The key itself is shown once, when it is made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What it is for.")
    prefix = models.CharField(
        max_length=8, editable=False, help_text="The key's first characters, to tell keys apart."
    )
    key_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}{', ' + self.name if self.name else ''})"


class TrustedPortal(models.Model):
    """Another portal whose signed exports this one imports (portal.accounts.trust): added and
    removed by an administrator, each change audited."""

    name = models.CharField(max_length=100, unique=True)
    public_key = models.CharField(
        max_length=64, unique=True, help_text="ed25519:<base64 of the 32 raw bytes>"
    )
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
