"""Phantoms from inference_worker go through ingest with the ages their manifest records."""

import pytest

from inference_worker.synthetic import generate
from portal.ingest.models import Image
from tests.portal.ingest.test_services import ingest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("profile", ["north", "south", "east"])
def test_phantoms_are_accepted_with_their_recorded_ages_and_sex(profile, site, tmp_path):
    rows = generate(tmp_path / "phantoms", 6, seed=3, profile=profile, label_noise=0.5)
    report = ingest(site, tmp_path / "phantoms")
    assert report["rejected"] == [
        {"file": "manifest.csv", "reason": report["rejected"][0]["reason"]}
    ]
    by_file = {e["file"]: e for e in report["accepted"]}
    for row in rows:
        entry = by_file[row["file"]]
        assert entry["sex"] == row["sex"]
        assert abs(entry["age_days"] - row["recorded_age_days"]) <= 3  # PatientAge is in weeks
    assert Image.objects.filter(burned_in_annotation=True).exists() == (profile != "north")
