"""`manage.py model_register DIR [--activate] [--name NAME]`: verify and register a checkpoint."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.predictions import services


class Command(BaseCommand):
    help = "Register a checkpoint folder (weights + model_card.json) as a model version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", type=Path, metavar="DIR")
        parser.add_argument("--activate", action="store_true", help="make it the active version")
        parser.add_argument("--name", help="version name (default: the card's name)")

    def handle(self, *args, folder: Path, activate: bool, name: str | None, **options) -> None:
        if not folder.is_dir():
            raise CommandError(f"{folder}: not a folder", returncode=2)
        try:
            version = services.model_version_register(folder=folder, name=name, activate=activate)
        except services.PredictionError as exc:
            raise CommandError(str(exc)) from exc
        state = "active" if version.is_active else "registered"
        self.stdout.write(f"model version {version.name} {state} (sha256 {version.sha256[:12]}…)")
