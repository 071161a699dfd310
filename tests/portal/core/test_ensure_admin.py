"""`manage.py ensure_admin`, the login line `make run` prints (and the first-run test reads)."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_ensure_admin_prints_the_portal_address_on_its_port_and_the_password(settings, data_dir):
    settings.PORTAL_PORT = 8123
    out = StringIO()

    call_command("ensure_admin", stdout=out)

    password_file = data_dir / "admin-password.txt"
    password = password_file.read_text().strip()
    assert out.getvalue().strip() == (
        f"Log in at http://127.0.0.1:8123/ as `admin` with the password in {password_file} "
        f"({password})."
    )
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert password_file.stat().st_mode & 0o777 == 0o600
