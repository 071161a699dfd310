"""Frozen versions and their items refuse UPDATE, DELETE and TRUNCATE in the database
(PostgreSQL), UPDATE and DELETE (SQLite); 0002 refused only UPDATE (and DELETE on PostgreSQL)."""

from django.db import migrations

from portal.core.models import append_only_triggers


class Migration(migrations.Migration):
    dependencies = [("validation", "0002_append_only")]
    operations = [
        append_only_triggers("validation_validationsetversion", replaces_first=True),
        append_only_triggers("validation_validationitem", replaces_first=True),
    ]
