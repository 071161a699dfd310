"""`manage.py seed_demo`, the demo sites of `make run`, on a fresh data folder (issue 15: it
assumed a `tmp/` folder that nothing had made)."""

from io import StringIO

import pytest
from django.core.management import call_command

from portal.ingest.models import Image

pytestmark = pytest.mark.django_db


def seed(count: int) -> str:
    out = StringIO()
    call_command("seed_demo", "--count", str(count), stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_fills_a_fresh_data_folder(data_dir):
    assert not (data_dir / "tmp").exists()

    seed(3)

    by_site = {
        slug: Image.objects.filter(site__slug=slug).count() for slug in ("demo-north", "demo-south")
    }
    assert by_site == {"demo-north": 3, "demo-south": 3}
    assert list((data_dir / "tmp").iterdir()) == []  # its phantoms are cleaned up


def test_seed_demo_a_second_time_adds_nothing(data_dir):
    seed(3)

    out = seed(3)

    assert Image.objects.count() == 6
    assert "demo site demo-north: 3 images already" in out
