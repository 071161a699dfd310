"""`manage.py dicom_listen [--host HOST] [--port 11112] [--tls-port 2762]`: the DICOM receiver.

C-ECHO, and C-STORE into the site whose AE title is called (`manage.py dicom_ae`), from the
senders it allows. `make run` and the compose stack start it."""

import contextlib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from portal.pacs.listener import serve


class Command(BaseCommand):
    help = "Receive DICOM (C-ECHO, C-STORE) for the sites' AE titles."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        cfg = settings.DICOM
        parser.add_argument("--host", default=cfg["HOST"])
        parser.add_argument("--port", type=int, default=cfg["PORT"])
        parser.add_argument(
            "--tls-port",
            type=int,
            default=cfg["TLS_PORT"],
            help="DICOM over TLS, when PORTAL_DICOM_TLS_CERT is set (0: off)",
        )

    def handle(self, *args, host: str, port: int, tls_port: int, **options) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            serve(host=host, port=port, tls_port=tls_port or None)
