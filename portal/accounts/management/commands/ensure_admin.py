"""Create the first admin account (once) and say how to log in."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from portal.accounts.services import user_create


class Command(BaseCommand):
    help = "Create an `admin` superuser with a random password if no superuser exists."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default=f"http://127.0.0.1:{settings.PORTAL_PORT}/")

    def handle(self, *args, url: str, **options) -> None:
        users = get_user_model().objects
        password_file = settings.DATA_DIR / "admin-password.txt"
        if not users.filter(is_superuser=True).exists():
            # Through the service: the generated password passes the password validators, and
            # the creation is on the record.
            _, password = user_create(actor=None, username="admin", superuser=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if password_file.exists():
            self.stdout.write(
                f"Log in at {url} as `admin` with the password in {password_file} "
                f"({password_file.read_text().strip()})."
            )
        else:
            self.stdout.write(f"Log in at {url} with your admin account.")
