"""The audit log refuses UPDATE in the database itself (and DELETE on PostgreSQL, whose test
flush truncates; SQLite's flush deletes rows, so there the model and queryset refuse it)."""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION accounts_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER accounts_auditevent_append_only
    BEFORE UPDATE OR DELETE ON accounts_auditevent
    FOR EACH ROW EXECUTE FUNCTION accounts_auditevent_append_only();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS accounts_auditevent_append_only ON accounts_auditevent;
DROP FUNCTION IF EXISTS accounts_auditevent_append_only();
"""
SQLITE_FORWARD = """
CREATE TRIGGER accounts_auditevent_append_only BEFORE UPDATE ON accounts_auditevent
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS accounts_auditevent_append_only;"


def forward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
