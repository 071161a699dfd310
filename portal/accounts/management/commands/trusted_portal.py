"""`manage.py trusted_portal add NAME PUBLIC_KEY | list | remove NAME`: the portals whose
signed exports `validation_set import` accepts. Exit status 1 when a change is refused."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.accounts.trust import TrustError, trusted_portal_add, trusted_portal_remove
from portal.core import signing
from portal.core.models import TrustedPortal


class Command(BaseCommand):
    help = "Add, list or remove the portals whose signed exports this portal imports."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="trust a portal's key (from its `manage.py signing_key`)")
        add.add_argument("name")
        add.add_argument("public_key", metavar="PUBLIC_KEY", help="ed25519:<base64>")
        sub.add_parser("list", help="the trusted portals: name, key id, public key, added")
        sub.add_parser("remove", help="stop trusting a portal").add_argument("name")

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "add":
                portal = trusted_portal_add(
                    actor=None, name=options["name"], public_key=options["public_key"]
                )
                self.stdout.write(
                    f"trusted {portal.name}: {portal.public_key} "
                    f"(key id {signing.key_id(portal.public_key)})"
                )
            elif action == "remove":
                portal = TrustedPortal.objects.filter(name=options["name"]).first()
                if portal is None:
                    raise CommandError(f"no trusted portal {options['name']!r}", returncode=2)
                trusted_portal_remove(actor=None, portal=portal)
                self.stdout.write(f"no longer trusted: {portal.name}")
            else:
                for portal in TrustedPortal.objects.all():
                    self.stdout.write(
                        f"{portal.name}  {signing.key_id(portal.public_key)}  {portal.public_key}"
                        f"  added {portal.added_at:%Y-%m-%d %H:%M} UTC"
                    )
        except TrustError as exc:
            raise CommandError(str(exc), returncode=1) from exc
