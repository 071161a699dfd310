"""`manage.py backup OUT`: the database rows and the stored files, with their manifest.

Exit status: 0 when the backup is written, 1 when it cannot be (OUT not empty, a file
unreadable).
"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from portal.operations.backup import BackupError, backup_write


class Command(BaseCommand):
    help = "Back up the database and the stored files into the new folder OUT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("out", type=Path, metavar="OUT")

    def handle(self, *args, out: Path, **options) -> None:
        bar = tqdm(unit="file", file=sys.stderr, disable=options["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            manifest = backup_write(out=out, progress=progress)
        except (BackupError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        rows = sum(manifest["database"]["counts"].values())
        size = sum(f["size"] for f in manifest["files"])
        self.stdout.write(
            f"backed up {rows} rows and {len(manifest['files'])} files ({size} bytes) to {out}"
        )
