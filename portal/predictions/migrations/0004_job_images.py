import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingest', '0003_pixel_hash_unreadable'),
        ('predictions', '0003_prediction_heatmap_sha256'),
    ]

    operations = [
        migrations.AddField(
            model_name='predictionjob',
            name='dispatch_cursor',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='predictionjob',
            name='dispatches',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='predictionjob',
            name='progressed_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name='predictionjob',
            index=models.Index(fields=['finished_at', 'progressed_at'], name='job_stall_idx'),
        ),
        migrations.CreateModel(
            name='JobImage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=8)),
                ('image', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ingest.image')),
                ('job', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='rows', to='predictions.predictionjob')),
            ],
            options={
                'indexes': [models.Index(fields=['job', 'state', 'image'], name='job_image_pending_idx')],
                'constraints': [models.UniqueConstraint(fields=('job', 'image'), name='one_row_per_job_and_image')],
            },
        ),
    ]
