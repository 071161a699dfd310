"""`manage.py serve_web`: the portal's web server alone (portal.core.webserver); `run_portal`
starts it with the workers, and the Docker web image runs it."""

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.core.webserver import serve


class Command(BaseCommand):
    help = "Serve the portal over http with waitress (slow clients never hold a thread)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORTAL_PORT)
        parser.add_argument(
            "--threads", type=int, default=settings.PORTAL_WEB_THREADS, help="PORTAL_WEB_THREADS"
        )

    def handle(self, *args, host: str, port: int, threads: int, **options) -> None:
        serve(host=host, port=port, threads=threads)
