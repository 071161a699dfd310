"""`manage.py report --validation-set NAME[:VERSION] --model NAME [--compare-model NAME]
--format html|csv|json|pdf --out FILE [--age-groups 0,1,3,6,12,18] [--internal-site SLUG ...]`

Predicts the set's missing images first through the inference queue (a progress bar on stderr;
the workers must be running), then writes the report. Exit 2 for usage errors, 1 when the
report cannot be made.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from portal.predictions.follow import follow_jobs
from portal.predictions.models import ModelVersion
from portal.reports import output, services
from portal.validation import selectors as sets


class Command(BaseCommand):
    help = "Write an error report of a model version on a frozen validation set."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--validation-set", required=True, metavar="NAME[:VERSION]")
        parser.add_argument("--model", required=True, metavar="NAME")
        parser.add_argument("--compare-model", metavar="NAME")
        parser.add_argument("--format", required=True, choices=output.FORMATS)
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--age-groups", default=services.DEFAULT_GROUPS_TEXT, metavar="B,B,...")
        parser.add_argument(
            "--internal-site",
            action="append",
            default=[],
            metavar="SLUG",
            help="the paper's table: these sites are internal, the rest external",
        )
        parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **o) -> None:
        try:
            name, number = sets.parse_ref(o["validation_set"])
            version = sets.version_get(user=None, name=name, number=number)
            groups = services.parse_age_groups(o["age_groups"])
        except (sets.NotFound, services.ReportError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        models = {}
        for key in ("model", "compare_model"):
            if o[key]:
                models[key] = ModelVersion.objects.filter(name=o[key]).first()
                if models[key] is None:
                    raise CommandError(f"no model version {o[key]}", returncode=2)
        try:
            with transaction.atomic():
                report = services.report_create(
                    version=version,
                    model=models["model"],
                    compare=models.get("compare_model"),
                    age_groups=groups,
                    internal_sites=o["internal_site"],
                    resamples=o["resamples"],
                    seed=o["seed"],
                    build=False,
                )
                report.jobs = services.report_predict_missing(report=report)
                report.save(update_fields=["jobs"])
            follow_jobs(report.jobs, out=self.stderr)
            report = services.report_finish(report=report)
        except services.ReportError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        if report.state != report.State.DONE:
            raise CommandError(report.failure_reason, returncode=1)
        o["out"].write_bytes(output.render(report=report, fmt=o["format"]))
        overall = report.result["overall"]
        self.stdout.write(
            f"report {report.pk}: {overall['n']} items, MAE {overall['mae_months']:.2f} months "
            f"-> {o['out']}"
        )
