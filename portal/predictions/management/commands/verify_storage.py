"""`manage.py verify_storage [--json]`: re-hash every stored image file and heatmap against the
database; exit 1 when a file is missing, altered or orphaned."""

import json
import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from portal.predictions.integrity import storage_verify


class Command(BaseCommand):
    help = (
        "Re-hash every stored image file and heatmap against the database and report missing, "
        "altered and orphaned files (exit 1 when there is any)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="one JSON object on stdout"
        )

    def handle(self, *args, as_json: bool, **options) -> None:
        with tqdm(unit="file", desc="verify", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            report = storage_verify(progress=progress)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._write_text(report)
        if not report.ok:
            sys.exit(1)

    def _write_text(self, report) -> None:
        for kind in ("missing", "altered", "orphaned"):
            for entry in getattr(report, kind):
                self.stdout.write(f"{kind}: {_describe(entry)}")
        for entry in report.not_verifiable:
            self.stdout.write(f"not verifiable (no recorded sha256): {_describe(entry)}")
        self.stdout.write(
            f"{report.checked} files checked: {len(report.missing)} missing, "
            f"{len(report.altered)} altered, {len(report.orphaned)} orphaned, "
            f"{len(report.not_verifiable)} not verifiable"
        )


def _describe(entry: dict) -> str:
    owners = [f"{key} {entry[key]}" for key in ("image", "prediction") if key in entry]
    extra = f" ({', '.join(owners)})" if owners else ""
    return entry["path"] + extra + (f": {entry['error']}" if "error" in entry else "")
