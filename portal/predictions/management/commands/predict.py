"""`manage.py predict --site SLUG [--model NAME] [--retry-failed] [--wait]`: queue a prediction
job."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from portal.ingest.models import Site
from portal.predictions import services
from portal.predictions.models import ModelVersion, PredictionJob


class Command(BaseCommand):
    help = "Queue the site's images that lack a prediction from the model (default: active)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site", required=True, metavar="SLUG")
        parser.add_argument("--model", metavar="NAME")
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="queue the images whose prediction from the model failed (not the unreadable)",
        )
        parser.add_argument("--wait", action="store_true", help="follow the job until it ends")

    def handle(
        self, *args, site: str, model: str | None, retry_failed: bool, wait: bool, **options
    ) -> None:
        site_obj = Site.objects.filter(slug=site).first()
        if site_obj is None:
            raise CommandError(f"site {site!r} does not exist", returncode=2)
        version = None
        if model:
            version = ModelVersion.objects.filter(name=model).first()
            if version is None:
                raise CommandError(f"model version {model!r} does not exist", returncode=2)
        try:
            job = services.prediction_job_create(
                site=site_obj, model_version=version, retry_failed=retry_failed
            )
        except services.PredictionError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        what = "failed images re-queued" if retry_failed else "images queued"
        self.stdout.write(f"job {job.pk}: {job.total} {what} for {job.model_version.name}")
        if wait:
            job = self._follow(job)
            self.stdout.write(
                f"job {job.pk} {job.state}: {job.done_count} done, {job.failed_count} failed"
            )
            if job.state == PredictionJob.State.FAILED:
                sys.exit(1)

    def _follow(self, job: PredictionJob) -> PredictionJob:
        with tqdm(total=job.total, unit="image", file=sys.stderr, desc=f"job {job.pk}") as bar:
            while job.finished_at is None:
                time.sleep(0.5)
                job.refresh_from_db()
                bar.update(job.done_count + job.failed_count - bar.n)
        return job
