"""`manage.py calibrate --model NAME --validation-set NAME[:VERSION] [--coverage 0.9]
[--taxonomy label|predicted] [--no-predict]`

Split-conformal calibration of a model version on a frozen validation set
(`inference_worker.conformal`); the record is stored with the version, and the version's
predictions get their intervals (and, under PORTAL_OUTLIER_RULE=interval, their scores) again.
Items without a prediction are predicted first through the inference queue (a progress bar on
stderr; the workers must be running), or with `--no-predict` the command stops and names them.
Exit 2 for usage errors, 1 when the calibration cannot be made.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference_worker import conformal
from inference_worker.ages import DAYS_PER_MONTH
from portal.predictions.follow import follow_jobs
from portal.predictions.models import ModelVersion
from portal.reports import calibration as services
from portal.reports.services import ReportError
from portal.validation import selectors as sets


class Command(BaseCommand):
    help = "Calibrate a model version's prediction intervals on a frozen validation set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, metavar="NAME")
        parser.add_argument("--validation-set", required=True, metavar="NAME[:VERSION]")
        parser.add_argument("--coverage", type=float, default=0.9, help="the goal, e.g. 0.9")
        parser.add_argument(
            "--taxonomy",
            choices=conformal.TAXONOMIES,
            default="label",
            help="cells by true age group (default: at least the goal in every true age group) "
            "or by predicted age group (narrower; no per-true-group guarantee)",
        )
        parser.add_argument(
            "--no-predict",
            action="store_true",
            help="stop if an item has no prediction instead of queueing it",
        )

    def handle(self, *args, **o) -> None:
        if not 0 < o["coverage"] < 1:
            raise CommandError("--coverage must be between 0 and 1, e.g. 0.9", returncode=2)
        try:
            name, number = sets.parse_ref(o["validation_set"])
            version = sets.version_get(user=None, name=name, number=number)
        except sets.NotFound as exc:
            raise CommandError(str(exc), returncode=2) from exc
        model = ModelVersion.objects.filter(name=o["model"]).first()
        if model is None:
            raise CommandError(f"no model version {o['model']}", returncode=2)
        try:
            if not o["no_predict"]:
                job = services.calibration_predict_missing(version=version, model=model)
                follow_jobs([job.pk] if job else [], out=self.stderr)
            calibration = services.calibration_create(
                version=version, model=model, coverage=o["coverage"], taxonomy=o["taxonomy"]
            )
        except ReportError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        record = calibration.record
        self.stdout.write(
            f"calibration {calibration.pk} of {model.name} on {version.validation_set.name}:"
            f"{version.number}: {record['n']} items, {record['coverage']:.0%} intervals, "
            f"{record['method']}; {calibration.rescored} predictions updated"
        )
        for group, cell in record["cells"].items():
            ends = [
                "open" if v is None else f"{v / DAYS_PER_MONTH:+.1f}"
                for v in (cell["low"], cell["high"])
            ]
            note = " (too few: all groups' residuals)" if cell["fallback"] else ""
            self.stdout.write(
                f"  {group} y: n={cell['n']}, true - predicted in months "
                f"[{ends[0]}, {ends[1]}]{note}"
            )
        if record["sites_pooled"]:
            self.stdout.write(
                f"  sites with fewer than {record['min_cell']} items in some age group use the "
                f"pooled cells: {', '.join(record['sites_pooled'])}"
            )
