"""`manage.py seed_demo`: two demo sites of phantoms with label noise, ingested through the same
ingest service as any upload (once; later runs find them and do nothing)."""

import os
import sys
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from inference_worker import synthetic
from portal.core.files import data_folder
from portal.ingest import services
from portal.ingest.archive import Source
from portal.ingest.models import Site, Upload

DEMO_SITES = (
    ("demo-north", "Demo: North Valley (phantoms)", "north", 1001),
    ("demo-south", "Demo: Southbay (phantoms)", "south", 2002),
)


class Command(BaseCommand):
    help = "Create two demo sites from synthetic phantoms of two site profiles (first run only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--count", type=int, default=300, help="phantoms per site")
        parser.add_argument("--label-noise", type=float, default=0.08)

    def handle(self, *args, count: int, label_noise: float, **options) -> None:
        for slug, name, profile, seed in DEMO_SITES:
            site = Site.objects.filter(slug=slug).first()
            if site is not None and site.images.exists():
                self.stdout.write(f"demo site {slug}: {site.images.count()} images already")
                continue
            site = site or services.site_create(slug=slug, name=name)
            with tempfile.TemporaryDirectory(dir=data_folder("tmp")) as tmp:
                self.stdout.write(f"demo site {slug}: making {count} '{profile}' phantoms")
                synthetic.generate(
                    Path(tmp),
                    count,
                    seed,
                    profile,
                    label_noise,
                    workers=os.cpu_count() or 1,
                    progress=True,
                )
                (Path(tmp) / "manifest.csv").unlink()  # the truth stays out of the portal
                upload = services.upload_create(site=site, source=Upload.Source.CLI)
                with tqdm(unit="file", file=sys.stderr, desc=f"ingest {slug}") as bar:
                    upload = services.upload_process(
                        upload=upload,
                        sources=[Source.given(Path(tmp))],
                        on_total=lambda total: bar.reset(total=total),
                        on_file=lambda record, ref: bar.update(1),
                    )
            self.stdout.write(
                f"demo site {slug}: {upload.accepted_count} images ingested, "
                f"{upload.rejected_count} rejected"
            )
