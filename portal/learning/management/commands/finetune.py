"""`manage.py finetune --parent NAME --validation-set NAME[:VERSION] [--validation-set ...]
--name NEW [--recalibrate-only [--method isotonic|linear] [--site SLUG]] [--epochs N]
[--held-out NAME[:VERSION]] [--max-cases N] [--seed N] [--wait]`

Starts a training job on the `inference` queue (the workers must be running): fine-tuning of
the parent on the curated cases of the frozen sets (patient-level split), or with
`--recalibrate-only` an isotonic (default) or linear recalibration of its output for one site
from at most 200 cases. It ends as a new registered model version, never activated here: with
`--held-out`, a report compares it with the parent on that frozen set, and a lead activates it
(`model_register --activate`, the job's page, or the API) once the report says so. With
`--wait`, follows the job and prints what it became. Exit 2 for usage errors, 1 for a failed
job.
"""

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from portal.learning import selectors, services
from portal.learning.models import TrainingJob


class Command(BaseCommand):
    help = "Fine-tune or recalibrate a model version from curated, frozen validation sets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--parent", required=True, metavar="NAME")
        parser.add_argument(
            "--validation-set", required=True, action="append", metavar="NAME[:VERSION]"
        )
        parser.add_argument("--name", required=True, metavar="NEW")
        parser.add_argument("--recalibrate-only", action="store_true")
        parser.add_argument("--method", choices=services.METHODS, default=services.DEFAULT_METHOD)
        parser.add_argument("--site", metavar="SLUG", help="recalibrate for this site")
        parser.add_argument("--epochs", type=int, default=services.DEFAULT_EPOCHS)
        parser.add_argument(
            "--held-out",
            metavar="NAME[:VERSION]",
            help="a frozen set of other patients: the report against the parent",
        )
        parser.add_argument("--max-cases", type=int, help="at most this many curated cases")
        parser.add_argument("--seed", type=int, default=0, help="of the patient-level split")
        parser.add_argument("--wait", action="store_true", help="follow the job to its end")

    def handle(self, *args, **o) -> None:
        try:
            with transaction.atomic():
                job = services.training_job_request(
                    user=None,
                    parent=o["parent"],
                    validation_sets=o["validation_set"],
                    name=o["name"],
                    holdout=o["held_out"],
                    site=o["site"],
                    recalibrate_only=o["recalibrate_only"],
                    method=o["method"],
                    epochs=o["epochs"],
                    max_cases=o["max_cases"],
                    seed=o["seed"],
                )
        except services.TrainingError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        status = selectors.training_job_status(job=job)
        self.stdout.write(
            f"training job {job.pk}: {job.mode} of {job.parent.name} on {job.cases} cases "
            f"(split: {status['split']['method']}) -> {job.name}"
        )
        if o["wait"]:
            self._wait(job)

    def _wait(self, job: TrainingJob) -> None:
        with tqdm(total=100, unit="%", desc=job.mode, file=self.stderr) as bar:
            while True:
                job.refresh_from_db()
                status = selectors.training_job_status(job=job)
                bar.update(round(status["progress"] * 100) - bar.n)
                if job.finished_at is not None:
                    break
                time.sleep(1)
        if job.state == TrainingJob.State.FAILED:
            raise CommandError(f"training job {job.pk} failed: {job.failure_reason}", returncode=1)
        self.stdout.write(
            f"model version {job.result_version.name} registered (sha256 "
            f"{job.result_version.sha256[:12]}, not active)"
            + (f"; report {job.report_id} compares it with {job.parent.name}" if job.report else "")
        )
