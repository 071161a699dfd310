"""`manage.py federated_report export --validation-set NAME[:VERSION] --model NAME --out FILE.json`
and `manage.py federated_report combine FILE.json [...] --format json|html --out OUT`.

export: this site's signed report (aggregates per age group x sex, no images, no per-image rows),
predicting the set's missing images first through the inference queue (the workers must be
running). combine: one multi-site table from many sites' reports; a file whose signature fails
or whose signer is not trusted is refused, named with its reason on stderr and in the table, and
the others combine. Exit 2 for usage errors, 1 when nothing can be written.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from portal.predictions.follow import follow_jobs
from portal.predictions.models import ModelVersion
from portal.reports import services
from portal.reports.federated import FederatedError, federated_combine, federated_export
from portal.reports.render.federated import federated_html
from portal.validation import selectors as sets


class Command(BaseCommand):
    help = "Export this site's signed federated report, or combine many sites' reports."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="this site's signed report of a model on a set")
        export.add_argument("--validation-set", required=True, metavar="NAME[:VERSION]")
        export.add_argument("--model", required=True, metavar="NAME")
        export.add_argument("--out", required=True, type=Path)
        export.add_argument("--age-groups", default=services.DEFAULT_GROUPS_TEXT, metavar="B,B,...")
        export.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
        export.add_argument("--seed", type=int, default=0)
        combine = sub.add_parser("combine", help="one table from many sites' signed reports")
        combine.add_argument("files", nargs="+", type=Path, metavar="FILE.json")
        combine.add_argument("--format", required=True, choices=("json", "html"))
        combine.add_argument("--out", required=True, type=Path)
        combine.add_argument(
            "--allow-different-models",
            action="store_true",
            help="combine reports of different model versions (sha256) anyway",
        )

    def handle(self, *args, action: str, **o) -> None:
        if action == "export":
            self._export(o)
        else:
            self._combine(o)

    def _export(self, o: dict) -> None:
        try:
            name, number = sets.parse_ref(o["validation_set"])
            version = sets.version_get(user=None, name=name, number=number)
            groups = services.parse_age_groups(o["age_groups"])
        except (sets.NotFound, services.ReportError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        model = ModelVersion.objects.filter(name=o["model"]).first()
        if model is None:
            raise CommandError(f"no model version {o['model']}", returncode=2)
        try:
            with transaction.atomic():
                report = services.report_create(
                    version=version,
                    model=model,
                    age_groups=groups,
                    resamples=o["resamples"],
                    seed=o["seed"],
                    build=False,
                )
                report.jobs = services.report_predict_missing(report=report)
                report.save(update_fields=["jobs"])
            follow_jobs(report.jobs, out=self.stderr)
            data = federated_export(report=report)
        except (services.ReportError, FederatedError) as exc:
            raise CommandError(str(exc), returncode=1) from exc
        o["out"].write_bytes(data)
        services.report_download_record(user=None, report=report, fmt="federated")
        payload = json.loads(data)["report"]
        overall = payload["metrics"]["overall"]
        self.stdout.write(
            f"federated report of {model.name} on {version.validation_set.name} "
            f"v{version.number}: {overall['n']} items, MAE {overall['mae_months']:.2f} months, "
            f"signed by key {payload['portal']['key_id']} -> {o['out']}"
        )

    def _combine(self, o: dict) -> None:
        files, unreadable = [], []
        for path in o["files"]:
            try:
                files.append((str(path), path.read_bytes()))
            except OSError as exc:
                unreadable.append({"file": str(path), "reason": f"cannot be read ({exc.strerror})"})
        try:
            table = federated_combine(
                files=files,
                allow_different_models=o["allow_different_models"],
                unreadable=unreadable,
            )
        except FederatedError as exc:
            raise CommandError(str(exc), returncode=1) from exc
        for refused in table["refused"]:
            self.stderr.write(f"refused {refused['file']}: {refused['reason']}")
        if o["format"] == "json":
            o["out"].write_text(json.dumps(table, indent=2) + "\n")
        else:
            o["out"].write_text(federated_html(table))
        pooled = table["pooled"]["overall"]
        spread = table["heterogeneity"]["overall"]
        i2 = spread["i2_percent"]
        self.stdout.write(
            f"{len(table['sites'])} sites combined ({len(table['refused'])} refused): "
            f"{pooled['n']} items, pooled MAE {pooled['mae_months']:.2f} months"
            + (f", I² {i2:.1f}%" if i2 is not None else "")
            + f" -> {o['out']}"
        )
