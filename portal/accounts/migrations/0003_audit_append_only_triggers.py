"""The audit log refuses UPDATE, DELETE and TRUNCATE in the database (PostgreSQL), UPDATE and
DELETE (SQLite); 0002 refused only UPDATE (and DELETE on PostgreSQL)."""

from django.db import migrations

from portal.core.models import append_only_triggers


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_audit_append_only")]
    operations = [append_only_triggers("accounts_auditevent", replaces_first=True)]
