"""Print this portal's public signing key (made now if there is none), for another portal's
administrator to trust with `manage.py trusted_portal add NAME KEY`."""

from django.core.management.base import BaseCommand, CommandError

from portal.core import signing


class Command(BaseCommand):
    help = (
        "Print this portal's Ed25519 public key, ed25519:<base64>, on the last line "
        "(the key is made on first use)."
    )

    def handle(self, *args, **options) -> None:
        path = signing.key_path()
        existed = path.exists()
        try:
            public = signing.own_public_key()
        except signing.SigningError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"key file: {path}{'' if existed else ' (made now)'}")
        self.stdout.write(f"key id: {signing.key_id(public)}")
        # Last line: the key alone, for scripts (`... | tail -n 1`).
        self.stdout.write(public)
