"""Base pieces shared by the domain apps: records that are written once and never changed, and
API tokens."""

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


class AppendOnlyModel(models.Model):
    """Refuses changes in the model and its queryset; `append_only_trigger` adds a database
    trigger that refuses UPDATE (and DELETE on PostgreSQL, whose test flush truncates;
    SQLite's flush deletes rows, so there the model and queryset refuse it)."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows cannot be deleted")


def append_only_trigger(table: str) -> migrations.RunPython:
    """A migration operation installing the database half of `AppendOnlyModel`."""
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
