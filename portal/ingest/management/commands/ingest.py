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
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
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
        with closing(_Names()) as names:

            def on_file(record: UploadFile, ref: services.FileRef) -> None:
                names.add(record.label, ref.name)
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
            self._report(upload, names, as_json=options["json"])
        if upload.rejected_count:
            sys.exit(1)

    def _report(self, upload: Upload, names: "_Names", *, as_json: bool) -> None:
        """Written as it is read, a line at a time: its memory does not grow with the number
        of files."""
        if as_json:
            self.stdout.write(f'{{"upload": {upload.pk}', ending="")
            for group in selectors.OUTCOME_GROUPS:
                self.stdout.write(f', "{group}": [', ending="")
                for n, line in enumerate(_lines(upload, group, names)):
                    self.stdout.write((", " if n else "") + json.dumps(line), ending="")
                self.stdout.write("]", ending="")
            self.stdout.write("}")
            return
        for line in _lines(upload, "rejected", names):
            self.stderr.write(f"rejected {line['name']} ({line['file']}): {line['reason']}")
        warned = 0
        for group in selectors.OUTCOME_GROUPS:
            for line in _lines(upload, group, names, warned=True):
                warned += 1
                for text in line["warning"].split(WARNING_SEPARATOR):
                    self.stderr.write(f"warning {line['name']} ({line['file']}): {text}")
        self.stdout.write(
            f"upload {upload.pk}: {upload.accepted_count} accepted, "
            f"{upload.duplicate_count} duplicates, {upload.rejected_count} rejected, "
            f"{warned} with warnings"
        )


class _Names:
    """The name the operator gave each file, by its label, in a private temporary database
    on disk (SQLite's own: unlinked from its creation, gone with the process) rather than in
    this process's memory, which would grow with the number of files."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA cache_size = -256")  # KiB: the disk's cache holds the rest
        self._db.execute("CREATE TABLE name (label TEXT PRIMARY KEY, name TEXT NOT NULL)")

    def add(self, label: str, name: str) -> None:
        self._db.execute("INSERT INTO name VALUES (?, ?)", (label, name))

    def get(self, label: str) -> str:
        row = self._db.execute("SELECT name FROM name WHERE label = ?", (label,)).fetchone()
        return row[0] if row else ""

    def close(self) -> None:
        self._db.close()


def _lines(upload: Upload, group: str, names: _Names, *, warned: bool = False) -> Iterator[dict]:
    """The group's report lines (those with a warning if `warned`), each with `name` as the
    operator gave it, after its `file`."""
    for line in selectors.upload_report_lines(upload=upload, group=group, warned=warned):
        yield {"file": line["file"], "name": names.get(line["file"]), **line}
