import uuid

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0005_private_file_names'),
    ]

    operations = [
        migrations.AlterField(
            model_name='upload',
            name='uuid',
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddIndex(
            model_name='uploadfile',
            index=models.Index(fields=['upload', 'outcome', 'id'], name='uploadfile_outcome_idx'),
        ),
    ]
