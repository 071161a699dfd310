# Upload lifecycle: staging token, submitted and expired states, file positions and name hashes.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0003_pixel_hash_unreadable'),
    ]

    operations = [
        migrations.AddField(
            model_name='site',
            name='keep_file_names',
            field=models.BooleanField(default=False, help_text="Keep uploaders' file and folder names in upload reports. Leave off unless this site's exports never put patient names or record numbers in file names."),
        ),
        migrations.AddField(
            model_name='upload',
            name='last_received_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='upload',
            name='received_files',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='upload',
            name='uuid',
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='uploadfile',
            name='entry',
            field=models.PositiveIntegerField(blank=True, help_text="1 for an archive's first entry; empty for a plain file.", null=True),
        ),
        migrations.AddField(
            model_name='uploadfile',
            name='index',
            field=models.PositiveIntegerField(default=0, help_text="1 for the upload's first file, and so on."),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='uploadfile',
            name='name_hash',
            field=models.CharField(default='', max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name='upload',
            name='status',
            field=models.CharField(choices=[('receiving', 'Receiving'), ('submitted', 'Submitted'), ('processing', 'Processing'), ('done', 'Done'), ('failed', 'Failed'), ('expired', 'Expired')], default='receiving', max_length=16),
        ),
        migrations.AlterField(
            model_name='uploadfile',
            name='name',
            field=models.CharField(blank=True, max_length=1024),
        ),
    ]
