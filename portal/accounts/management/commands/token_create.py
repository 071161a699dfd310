"""Make an API token for a user and print its key, the only time it is shown."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.accounts.tokens import token_create


class Command(BaseCommand):
    help = "Make an API token for USERNAME and print its key (only its sha256 is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, username: str, name: str, **options) -> None:
        try:
            user = get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"no user {username!r}") from exc
        _, key = token_create(actor=None, user=user, name=name)
        # The key alone on stdout, so that a script can capture it.
        self.stdout.write(key)
