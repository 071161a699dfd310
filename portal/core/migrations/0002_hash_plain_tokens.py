"""Tokens made before keys were hashed (DRF's authtoken table, which kept each key in plain text)
become ApiToken rows holding only the key's sha256, so the same keys keep working; then the
plain table is dropped. A database that never had authtoken has nothing to move."""

import hashlib

from django.db import migrations

PLAIN_TABLE = "authtoken_token"


def hash_plain_tokens(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("core", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {PLAIN_TABLE}")  # noqa: S608
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        token = ApiToken.objects.create(
            user_id=user_id,
            name="made before keys were hashed",
            prefix=key[:8],
            key_sha256=hashlib.sha256(key.encode()).hexdigest(),
        )
        ApiToken.objects.filter(pk=token.pk).update(created_at=created)
    schema_editor.execute(f"DROP TABLE {PLAIN_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("core", "0001_api_token")]

    # Not reversible: the plain keys are gone, which is the point.
    operations = [migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop)]
