# Give every upload its staging token and every report line its position; keep only a hash
# of the names uploaded so far.

import hashlib
import hmac
import uuid

from django.db import migrations


def _name_hash(key: str, name: str) -> str:
    # Frozen copy of portal.ingest.services.file_name_hash.
    message = b"upload-file-name\0" + name.encode("utf-8", "surrogatepass")
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def forwards(apps, schema_editor):
    Upload = apps.get_model("ingest", "Upload")
    UploadFile = apps.get_model("ingest", "UploadFile")
    for upload in Upload.objects.select_related("site").iterator():
        upload.uuid = uuid.uuid4()
        if upload.status == "receiving" and upload.submitted_at is not None:
            upload.status = "submitted"
        upload.received_files = upload.total_files
        upload.save(update_fields=["uuid", "status", "received_files"])
        key = upload.site.pseudonym_key
        # Names uploaded before this migration were kept verbatim: keep only their hash now
        # (no site has opted in to keeping names yet).
        for index, line in enumerate(UploadFile.objects.filter(upload=upload).order_by("id"), 1):
            line.index = index
            line.name_hash = _name_hash(key, line.name)
            line.name = ""
            line.save(update_fields=["index", "name_hash", "name"])


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0004_upload_lifecycle'),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
