"""The audit log refuses UPDATE in the database itself (and DELETE on PostgreSQL)."""

from django.db import migrations

from portal.core.models import append_only_trigger


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [append_only_trigger("accounts_auditevent")]
