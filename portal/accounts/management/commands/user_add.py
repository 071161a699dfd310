"""`manage.py user_add USERNAME --role uploader|reviewer|lead --site SLUG [--site SLUG ...]
[--password PW]`

Grants the role on each site named (run again to add sites or change the role there). A new
user without `--password` gets a generated one, printed once. Exit status 2 for usage errors
(an unknown site), 1 for what the accounts rules refuse (a name, a password, a site's last
lead), with the reason.
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.accounts import services
from portal.accounts.models import Membership, Role


class Command(BaseCommand):
    help = "Create a user (if new) and grant a role on one or more sites."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--site", required=True, action="append", metavar="SLUG")
        parser.add_argument("--password", help="default: keep an existing user's, or generate")

    def handle(self, *args, username: str, role: str, site: list[str], **options) -> None:
        site_model = Membership._meta.get_field("site").related_model
        sites = list(site_model.objects.filter(slug__in=site))
        unknown = sorted(set(site) - {s.slug for s in sites})
        if unknown:
            raise CommandError(f"no such site: {', '.join(unknown)}", returncode=2)
        try:
            user, generated = services.user_add(
                actor=None, username=username, role=role, sites=sites, password=options["password"]
            )
        except services.AccountsError as exc:  # a name or password rule, a site's last lead
            raise CommandError(str(exc)) from exc
        slugs = ", ".join(sorted(s.slug for s in sites))
        self.stdout.write(f"{user.get_username()} is {role} on {slugs}")
        if generated:
            self.stdout.write(f"password (shown once): {generated}")
