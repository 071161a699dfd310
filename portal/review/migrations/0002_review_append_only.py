"""Reviews refuse UPDATE, DELETE and TRUNCATE in the database (PostgreSQL), UPDATE and DELETE
(SQLite), as the model and its queryset do."""

from django.db import migrations

from portal.core.models import append_only_triggers


class Migration(migrations.Migration):
    dependencies = [("review", "0001_initial")]
    operations = [append_only_triggers("review_review")]
