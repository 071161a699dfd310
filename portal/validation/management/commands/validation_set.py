"""`manage.py validation_set create|freeze|list|diff|export|import`

    validation_set create NAME --site SLUG [--site ...] [--status S ...] [--sex M|F]
        [--min-age-days N] [--max-age-days N] [--age-group LOW-HIGH]
        [--uploaded-after DATE] [--uploaded-before DATE]
    validation_set freeze NAME
    validation_set list
    validation_set diff NAME V1 V2
    validation_set export NAME[:VERSION] --out FILE.zip
    validation_set import FILE.zip [--site-prefix P] [--allow-unsigned]

`NAME` alone means its latest frozen version. Exit status 0 on success, 1 when the request is
refused (e.g. a tampered import), 2 for usage errors (unknown set, site or version). An import
must be signed by a trusted portal (`manage.py trusted_portal`); `--allow-unsigned` lets an
unsigned one in, recorded as unsigned, never one whose signature does not verify.
"""

import datetime as dt
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from inference_worker.ages import REPORTED_SEXES
from portal.ingest.models import Site
from portal.validation import exports, imports, selectors, services
from portal.validation.models import ValidationSet


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)", returncode=2) from exc


class Command(BaseCommand):
    help = "Define, freeze, list, compare, export and import validation sets."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="define a set from filters")
        create.add_argument("name")
        create.add_argument("--site", action="append", required=True, metavar="SLUG")
        create.add_argument(
            "--status",
            action="append",
            metavar="S",
            help="confirmed, corrected, adjudicated (default: all three)",
        )
        create.add_argument("--sex", choices=REPORTED_SEXES)
        create.add_argument("--min-age-days", type=int)
        create.add_argument("--max-age-days", type=int)
        create.add_argument(
            "--age-group", metavar="LOW-HIGH", help="years, e.g. 1-3 (instead of the days)"
        )
        create.add_argument("--uploaded-after", type=_date, metavar="DATE")
        create.add_argument("--uploaded-before", type=_date, metavar="DATE")
        create.add_argument("--description", default="")
        create.add_argument(
            "--blind-only",
            action="store_true",
            help="only images whose every decision was made blind (docs/review.md, Blind reading)",
        )
        sub.add_parser(
            "freeze", help="freeze the set's current items as a new version"
        ).add_argument("name")
        sub.add_parser("list", help="every set and its versions")
        diff = sub.add_parser("diff", help="items added, removed or re-aged between versions")
        diff.add_argument("name")
        diff.add_argument("v1", type=int)
        diff.add_argument("v2", type=int)
        export = sub.add_parser("export", help="ZIP of the files with manifest.csv and .json")
        export.add_argument("ref", metavar="NAME[:VERSION]")
        export.add_argument("--out", type=Path, required=True)
        imp = sub.add_parser("import", help="import another portal's export, verified first")
        imp.add_argument("zip", type=Path, metavar="FILE.zip")
        imp.add_argument("--site-prefix", default="")
        imp.add_argument(
            "--allow-unsigned",
            action="store_true",
            help="accept an export without a signature (its provenance says unsigned)",
        )

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except selectors.NotFound as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except services.ValidationSetError as exc:
            raise CommandError(str(exc), returncode=1) from exc

    def _version(self, ref: str):
        name, number = selectors.parse_ref(ref)
        return selectors.version_get(user=None, name=name, number=number)

    def do_create(self, *, name: str, site: list[str], **o) -> None:
        sites = list(Site.objects.filter(slug__in=site))
        unknown = sorted(set(site) - {s.slug for s in sites})
        if unknown:
            raise CommandError(f"no such site: {', '.join(unknown)}", returncode=2)
        created = services.validation_set_create(
            name=name,
            sites=sites,
            description=o["description"],
            statuses=o["status"],
            sex=o["sex"],
            min_age_days=o["min_age_days"],
            max_age_days=o["max_age_days"],
            age_group=o["age_group"],
            uploaded_after=o["uploaded_after"],
            uploaded_before=o["uploaded_before"],
            blind_only=o["blind_only"],
        )
        matching = services.eligible_images(validation_set=created).count()
        self.stdout.write(f"created {created.name}: {matching} images match now; freeze it")

    def do_freeze(self, *, name: str, **o) -> None:
        found = ValidationSet.objects.filter(name=name).first()
        if found is None:
            raise CommandError(f"no validation set {name}", returncode=2)
        version = services.validation_set_freeze(validation_set=found)
        self.stdout.write(
            f"{found.name} v{version.number}: {version.item_count} items, "
            f"manifest sha256 {version.manifest_sha256}"
        )

    def do_list(self, **o) -> None:
        for found in ValidationSet.objects.prefetch_related("sites"):
            data = selectors.validation_set_data(found)
            versions = ", ".join(f"v{v['version']} ({v['items']})" for v in data["versions"])
            self.stdout.write(
                f"{data['name']}  sites {','.join(data['sites'])}  {versions or 'not frozen'}"
            )

    def do_diff(self, *, name: str, v1: int, v2: int, **o) -> None:
        old = selectors.version_get(user=None, name=name, number=v1)
        new = selectors.version_get(user=None, name=name, number=v2)
        self.stdout.write(json.dumps(services.version_diff(old=old, new=new), indent=2))

    def do_export(self, *, ref: str, out: Path, **o) -> None:
        version = self._version(ref)
        with tqdm(total=version.item_count, unit="file", desc="export", file=self.stderr) as bar:
            summary = exports.export_write(
                version=version, out=out, progress=lambda done, total: bar.update(done - bar.n)
            )
        exports.export_file_record(version=version, summary=summary)
        self.stdout.write(json.dumps(summary, default=str))

    def do_import(self, *, zip: Path, site_prefix: str, allow_unsigned: bool, **o) -> None:
        if not zip.is_file():
            raise CommandError(f"no such file: {zip}", returncode=2)
        version = imports.import_zip(
            path=zip, site_prefix=site_prefix, allow_unsigned=allow_unsigned
        )
        self.stdout.write(
            f"imported {version.validation_set.name} v{version.number}: {version.item_count} items"
            f" ({selectors.signature_text(version)})"
        )
