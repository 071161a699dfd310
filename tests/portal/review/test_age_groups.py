"""Every (years 0-17, months 0-11) the correction form can send lands in the age group its
years name in the review queue filter, the validation-set filter and the report: the days and
groups of `frontend/src/ages.expected.json`, which the browser's unit tests check the form
against (`frontend/src/ui/review/format.test.ts`)."""

import json
from pathlib import Path

import pytest
from django.db.models import F
from rest_framework.test import APIClient

from inference_worker import metrics
from inference_worker.ages import AGE_GROUPS, SEXES, group_name
from portal.ingest.models import Image, ReviewStatus
from portal.reports.services import DEFAULT_GROUPS_TEXT, parse_age_groups
from portal.validation.services import eligible_images, validation_set_create
from tests.portal import factories as f

pytestmark = pytest.mark.django_db

EXPECTED = json.loads(
    (Path(__file__).resolve().parents[3] / "frontend/src/ages.expected.json").read_text()
)
ENTRIES = EXPECTED["entries"]
GROUPS = [group_name(low, high) for low, high in AGE_GROUPS]


@pytest.fixture
def entries() -> dict[int, dict]:
    """One image per form entry, recorded at the entry's days; image id -> entry."""
    north = f.site("north")
    return {
        f.image(north, age_days=e["days"], sex="MF"[i % 2]).pk: e for i, e in enumerate(ENTRIES)
    }


def _expected(entries: dict[int, dict], group: str) -> set[int]:
    return {pk for pk, e in entries.items() if e["group"] == group}


def test_the_table_holds_every_entry_once_in_the_group_its_years_name():
    assert [(e["years"], e["months"]) for e in ENTRIES] == [
        (y, m) for y in range(18) for m in range(12)
    ]
    for e in ENTRIES:
        low, high = next(g for g in AGE_GROUPS if g[0] <= e["years"] < g[1])
        assert e["group"] == group_name(low, high)


def test_the_image_model_stores_the_sexes_of_the_rules():
    assert Image.Sex.values == list(SEXES)


def test_every_entry_lands_in_its_group_in_the_review_queue_filter(entries, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 0.0}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    for image in Image.objects.filter(pk__in=entries):
        f.prediction(image, version, age_days=image.age_days + 400)
    client = APIClient()
    client.force_authenticate(f.user("alice", "reviewer", Image.objects.first().site))
    for group in GROUPS:
        url, found = f"/api/review/queue/?age_group={group}&limit=200", set()
        while url:
            body = client.get(url).json()
            found |= {row["image"] for row in body["results"]}
            url = body["next"]
        assert found == _expected(entries, group), group


def test_every_entry_lands_in_its_group_in_the_validation_set_filter(entries):
    # Settled as confirmed directly: the set filter reads the curated age, however it came.
    Image.objects.filter(pk__in=entries).update(
        status=ReviewStatus.CONFIRMED, curated_age_days=F("age_days")
    )
    north = Image.objects.first().site
    for group in GROUPS:
        chosen = validation_set_create(name=f"set-{group}", sites=[north], age_group=group)
        found = set(eligible_images(validation_set=chosen).values_list("pk", flat=True))
        assert found == _expected(entries, group), group


def test_every_entry_lands_in_its_group_in_the_report():
    groups = tuple(tuple(g) for g in parse_age_groups(DEFAULT_GROUPS_TEXT))
    for e in ENTRIES:
        rep = metrics.report([e["days"]], [e["days"]], ["M"], groups=groups)
        held = [name for name, m in rep["by_group"].items() if m["n"] == 1]
        assert held == [e["group"]], e
