"""`manage.py dicom_ae SLUG AE_TITLE --calling SENDER_AE[@ADDRESS] [--calling ...]`

Give a site the AE title its PACS sends to, and the calling AE titles (each from one IP
address, or from any) allowed to send; replaces what the site had. Without AE_TITLE, print
the site's settings. Exit status 2 for a bad site, title or address."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.ingest.models import Site
from portal.pacs import services
from portal.pacs.models import SiteAE


class Command(BaseCommand):
    help = "Set a site's called AE title and the senders allowed to call it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("ae_title", nargs="?")
        parser.add_argument(
            "--calling",
            action="append",
            default=[],
            metavar="SENDER_AE[@ADDRESS]",
            help="a calling AE title allowed to send (repeat for more)",
        )

    def handle(self, *args, slug: str, ae_title: str | None, calling: list[str], **options):
        site = Site.objects.filter(slug=slug).first()
        if site is None:
            raise CommandError(f"site {slug!r} does not exist", returncode=2)
        if ae_title is None:
            site_ae = SiteAE.objects.filter(site=site).first()
            if site_ae is None:
                self.stdout.write(f"{slug}: no AE title")
            else:
                senders = ", ".join(str(s) for s in site_ae.senders.all()) or "none allowed"
                self.stdout.write(f"{slug}: {site_ae.ae_title}; senders: {senders}")
            return
        try:
            site_ae = services.site_ae_set(site=site, ae_title=ae_title, senders=calling)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages), returncode=2) from exc
        self.stdout.write(
            f"{slug}: AE title {site_ae.ae_title}, {site_ae.senders.count()} sender(s) allowed"
        )
