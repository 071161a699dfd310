"""`manage.py ingest PATH [PATH ...] --site SLUG [--create-site] [--json]`

The report names each file by its position (`#3`, `#3/2` inside an archive), as the portal
stores it, and by the path the operator gave (`name`), which this process knows and the
portal keeps only where the site keeps file names.

Without --json, each rejection and each warning of an accepted file goes to stderr, one line
each, and the summary to stdout.

Exit status: 0 when nothing was rejected (warnings or not), 1 when any file was (the good ones
are stored), 2 for usage errors.
"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from portal.ingest import selectors, services
from portal.ingest.archive import Source
from portal.ingest.models import Site, Upload, UploadFile
from portal.ingest.outcomes import WARNING_SEPARATOR


class Command(BaseCommand):
    help = "Ingest DICOM files, folders (recursive) or ZIP archives into a site."
    # Django's system checks load every URL configuration, and with it every view's imports
    # (matplotlib for the reports: about a second); an ingest needs none of them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", type=Path)
        parser.add_argument("--site", required=True, metavar="SLUG")
        parser.add_argument("--create-site", action="store_true", help="create the site if new")
        parser.add_argument("--json", action="store_true", help="print one JSON report on stdout")

    def handle(self, *args, paths: list[Path], site: str, create_site: bool, **options) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}", returncode=2)
        site_obj = Site.objects.filter(slug=site).first()
        if site_obj is None:
            if not create_site:
                raise CommandError(
                    f"site {site!r} does not exist (add --create-site to create it)", returncode=2
                )
            with transaction.atomic():
                site_obj = services.site_create(slug=site)

        sources = [Source.given(p) for p in paths]
        upload = services.upload_create(site=site_obj, source=Upload.Source.CLI)
        # On stderr, so that stdout stays one JSON object; -v 0 silences it.
        bar = tqdm(
            desc=f"upload {upload.pk}",
            unit="file",
            file=sys.stderr,
            disable=options["verbosity"] == 0,
            mininterval=0.5,
        )
        names: dict[str, str] = {}

        def on_file(record: UploadFile, ref: services.FileRef) -> None:
            names[record.label] = ref.name
            # The outcome shows with the next redraw (every mininterval): a redraw per file
            # would cost a write to the terminal per file.
            bar.set_postfix_str(record.outcome, refresh=False)
            bar.update(1)

        upload = services.upload_process(
            upload=upload,
            sources=sources,
            on_total=lambda total: bar.reset(total=total),
            on_file=on_file,
        )
        bar.close()

        report = _with_names(selectors.upload_report(upload=upload), names)
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            for entry in report["rejected"]:
                self.stderr.write(f"rejected {entry['name']} ({entry['file']}): {entry['reason']}")
            warned = [e for group in _GROUPS for e in report[group] if e.get("warning")]
            for entry in warned:
                for text in entry["warning"].split(WARNING_SEPARATOR):
                    self.stderr.write(f"warning {entry['name']} ({entry['file']}): {text}")
            self.stdout.write(
                f"upload {upload.pk}: {len(report['accepted'])} accepted, "
                f"{len(report['duplicates'])} duplicates, {len(report['rejected'])} rejected, "
                f"{len(warned)} with warnings"
            )
        if report["rejected"]:
            sys.exit(1)


_GROUPS = ("accepted", "duplicates", "rejected")


def _with_names(report: dict, names: dict[str, str]) -> dict:
    """The report with each line's `name` as the operator gave it, after its `file`."""
    for group in _GROUPS:
        report[group] = [
            {"file": line["file"], "name": names.get(line["file"], ""), **line}
            for line in report[group]
        ]
    return report
