"""`manage.py restore IN`: a backup into this portal's new, empty database and data folder.

It checks every file of the backup against its manifest first, migrates the database, refuses
one that holds rows or a data folder that holds stored files, loads the rows, copies the files
and ends with the storage check of `verify_storage`.

Exit status: 0 when restored and the storage check is clean, 1 otherwise.
"""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from portal.operations.backup import BackupError, restore_read


class Command(BaseCommand):
    help = "Restore the backup in folder IN into an empty database and data folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("source", type=Path, metavar="IN")

    def handle(self, *args, source: Path, **options) -> None:
        bar = tqdm(unit="file", file=sys.stderr, disable=options["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = restore_read(source=source, progress=progress)
        except (BackupError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        problems = len(report.missing) + len(report.altered) + len(report.orphaned)
        self.stdout.write(
            f"restored from {source}; {report.checked} files checked: {len(report.missing)} "
            f"missing, {len(report.altered)} altered, {len(report.orphaned)} orphaned"
        )
        if problems:
            raise CommandError("the restored files do not match the rows (run verify_storage)")
