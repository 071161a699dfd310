"""Frozen versions and their items refuse UPDATE in the database (and DELETE on PostgreSQL)."""

from django.db import migrations

from portal.core.models import append_only_trigger


class Migration(migrations.Migration):
    dependencies = [("validation", "0001_initial")]
    operations = [
        append_only_trigger("validation_validationsetversion"),
        append_only_trigger("validation_validationitem"),
    ]
