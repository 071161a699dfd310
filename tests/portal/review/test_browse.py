"""The home dashboard and the image browser (page and API): counts, filters, cursor pages."""

import re

import pytest
from django.test import Client

from portal.review.services import review_submit
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 2.0}
    north, south = f.site("north"), f.site("south")
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    rita = f.user("rita", "reviewer", north)
    girl = f.image(north, age_days=400, sex="F")
    boy = f.image(north, age_days=3000, sex="M")
    unpredicted = f.image(north, age_days=5000, sex="F")
    f.image(south, age_days=400, sex="F")
    f.prediction(girl, version, age_days=400 + 600)  # score 3.3: queued
    f.prediction(boy, version, age_days=3000 + 30)
    review_submit(
        image=boy,
        reviewer=rita,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    client = Client()
    client.force_login(rita)
    return {"client": client, "girl": girl, "boy": boy, "unpredicted": unpredicted}


def test_the_dashboard_counts_the_users_sites_only(world):
    page = world["client"].get("/").content.decode()
    row = page.split('data-site="north"')[1].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", "<td" + c).strip() for c in row.split("<td")[1:]]
    # site, images, predictions, queue, reviewed, then the counts by status
    assert cells[1:5] == ["3", "2", "1", "1"]
    assert 'data-site="south"' not in page
    assert "m1" in page  # the active model


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["girl", "boy", "unpredicted"]),
        ("sex=F", ["girl", "unpredicted"]),
        ("min_age_days=1000&max_age_days=4000", ["boy"]),
        ("age_group=1-3", ["girl"]),  # the recorded age in years, as the queue's filter
        ("age_group=6-12", ["boy"]),
        ("age_group=12-18&sex=F", ["unpredicted"]),
        ("age_group=6-12&max_age_days=2999", []),  # both bounds apply
        ("age_group=0-1", []),
        ("status=confirmed", ["boy"]),
        ("status=unreviewed&has_prediction=true", ["girl"]),
        ("has_prediction=false", ["unpredicted"]),
        ("site=south", []),
    ],
)
def test_the_image_list_filters(world, query, expected):
    body = world["client"].get(f"/api/images/?{query}").json()
    assert [r["id"] for r in body["results"]] == [world[name].pk for name in expected]
    page = world["client"].get(f"/images/?{query}").content.decode()
    for name in ("girl", "boy", "unpredicted"):
        assert (f'data-image="{world[name].pk}"' in page) == (name in expected)


def test_the_image_list_pages_by_cursor(world):
    client = world["client"]
    first = client.get("/api/images/?limit=2").json()
    second = client.get(first["next"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == [
        world[n].pk for n in ("girl", "boy", "unpredicted")
    ]
    assert second["next"] is None
    assert client.get("/api/images/?min_age_days=old").status_code == 400
    row = first["results"][0]
    assert (row["predicted_age_days"], row["status"], row["curated_age_days"]) == (
        1000,
        "unreviewed",
        None,
    )
