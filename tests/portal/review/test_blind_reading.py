"""Blind reading (issue 17): on a blind site the model's output for an image (predicted age,
residual, score, heatmap) reaches a member of the site by no route until they have decided on
it; decisions remember whether they were made blind; the switch is the leads' and on the record;
sets can keep blind decisions only; reports count corrections that copy the model."""

import base64
import json
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from portal.accounts.models import AuditEvent
from portal.ingest.models import Site
from portal.predictions.blind import COPY_TOLERANCE_DAYS, OUTPUT_KEYS
from portal.reports.services import report_compute, report_create
from portal.review.models import Review
from portal.review.services import review_submit
from portal.validation.services import (
    eligible_images,
    validation_set_create,
    validation_set_freeze,
)
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide(user, image, decision: str = "confirm", age_days: int | None = None) -> Review:
    image.refresh_from_db()
    return review_submit(
        image=image,
        reviewer=user,
        decision=decision,
        age_days=age_days,
        reason="",
        comment="",
        expected_revision=image.revision,
    )


@pytest.fixture
def world(settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    blind = f.site("blind", blind_reading=True)
    open_site = f.site("open")
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    users = {
        "rita": f.user("rita", "reviewer", blind, open_site),
        "ravi": f.user("ravi", "reviewer", blind),
        "lena": f.user("lena", "lead", blind, open_site),
        "uma": f.user("uma", "uploader", blind),
        "root": get_user_model().objects.create_superuser("root", password=f.PASSWORD),
    }
    # Two blind-site cases in the queue (scores 5 and 3), one on the open site.
    high = f.image(blind, age_days=2000, dicom=True)
    low = f.image(blind, age_days=2000, dicom=True)
    seen = f.image(open_site, age_days=2000, dicom=True)
    for image, months in ((high, 30), (low, 18), (seen, 24)):
        f.prediction(image, version, age_days=2000 + round(months * 30.4375), heatmap=True)
    return {"high": high, "low": low, "seen": seen, "version": version, **users}


def test_the_image_detail_leaves_the_models_output_out_until_the_reader_decides(world):
    rita, high = api(world["rita"]), world["high"]
    before = rita.get(f"/api/images/{high.pk}/").json()
    assert before["blind_reading"] is True
    assert before["output_hidden"] is True
    for key in OUTPUT_KEYS:  # absent, not null
        assert key not in before
    assert "heatmap" not in str(before)
    assert before["can_review"] is True
    # The heatmap answers 404, with or without the model named.
    for url in (f"/api/images/{high.pk}/heatmap/", f"/api/images/{high.pk}/heatmap/?model=m1"):
        response = rita.get(url)
        assert response.status_code == 404
        assert "blind reading" in response.json()["detail"]
    assert not AuditEvent.objects.filter(action="image.heatmap").exists()

    decide(world["rita"], high, "correct", age_days=2100)
    after = rita.get(f"/api/images/{high.pk}/").json()
    assert after["output_hidden"] is False
    assert after["predicted_age_days"] == 2000 + round(30 * 30.4375)
    assert (after["residual_days"], round(after["score"], 1)) == (round(30 * 30.4375), 5.0)
    assert after["prediction"]["heatmap_url"]
    assert rita.get(f"/api/images/{high.pk}/heatmap/").status_code == 200
    # Another reader of the site still has not decided: still blind.
    other = api(world["ravi"]).get(f"/api/images/{high.pk}/").json()
    assert other["output_hidden"] is True
    assert "predicted_age_days" not in other


def test_a_site_that_does_not_read_blind_shows_the_output_as_before(world):
    detail = api(world["rita"]).get(f"/api/images/{world['seen'].pk}/").json()
    assert (detail["blind_reading"], detail["output_hidden"]) == (False, False)
    assert detail["predicted_age_days"] == 2000 + round(24 * 30.4375)
    assert api(world["rita"]).get(f"/api/images/{world['seen'].pk}/heatmap/").status_code == 200


@pytest.mark.parametrize(("who", "hidden"), [("lena", True), ("uma", True), ("root", False)])
def test_leads_and_uploaders_are_blinded_too_administrators_are_not(world, who, hidden):
    client = api(world[who])
    detail = client.get(f"/api/images/{world['high'].pk}/").json()
    assert detail["output_hidden"] is hidden
    assert ("predicted_age_days" in detail) is not hidden
    heatmap = client.get(f"/api/images/{world['high'].pk}/heatmap/")
    assert heatmap.status_code == (404 if hidden else 200)


def test_an_adjudicating_lead_sees_both_readers_but_not_the_model_until_deciding(settings):
    blind = f.site("dbl", double_reading=True, blind_reading=True)
    version = f.model_version()
    first, second = f.user("r1", "reviewer", blind), f.user("r2", "reviewer", blind)
    lead = f.user("lead2", "lead", blind)
    image = f.image(blind, age_days=1000)
    f.prediction(image, version, age_days=1500)
    decide(first, image, "correct", age_days=1200)
    decide(second, image, "confirm")
    image.refresh_from_db()
    assert image.status == "disputed"
    client = api(lead)
    detail = client.get(f"/api/images/{image.pk}/").json()
    assert detail["output_hidden"] is True
    assert "prediction" not in detail
    reviews = client.get(f"/api/images/{image.pk}/reviews/").json()["results"]
    assert {(r["reviewer"], r["blind"]) for r in reviews} == {("r1", True), ("r2", True)}
    adjudication = decide(lead, image, "correct", age_days=1100)
    assert adjudication.blind is True
    assert client.get(f"/api/images/{image.pk}/").json()["predicted_age_days"] == 1500


def test_the_queue_keeps_the_score_order_but_shows_no_score_or_prediction(world):
    rows = api(world["rita"]).get("/api/review/queue/").json()["results"]
    assert [r["image"] for r in rows] == [world["high"].pk, world["seen"].pk, world["low"].pk]
    by_image = {r["image"]: r for r in rows}
    for image in (world["high"], world["low"]):
        assert "score" not in by_image[image.pk]
        assert "predicted_age_days" not in by_image[image.pk]
    assert by_image[world["seen"].pk]["score"] == pytest.approx(4.0, abs=0.01)

    html = page(world["rita"]).get("/review/").content.decode()
    row = html.split(f'data-image="{world["high"].pk}"')[1].split("</tr>")[0]
    assert "hidden" in row
    assert str(2000 + round(30 * 30.4375)) not in row
    assert 'id="blind-note"' in html
    assert "Blind reading on blind" in html


def test_the_queue_cursor_can_be_neither_read_nor_forged_to_learn_a_score(world):
    client = api(world["rita"])
    first = client.get("/api/review/queue/?limit=1").json()
    assert [r["image"] for r in first["results"]] == [world["high"].pk]
    cursor = parse_qs(urlparse(first["next"]).query)["cursor"][0]
    score = world["high"].predictions.get().score
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert repr(score).encode() not in raw
    assert b'"v"' not in raw
    second = client.get(first["next"]).json()
    assert [r["image"] for r in second["results"]] == [world["seen"].pk]
    # A cursor made by hand ("rows after score 4.5") is refused, not answered.
    forged = base64.urlsafe_b64encode(json.dumps({"v": [4.5, 10**9], "f": True}).encode())
    response = client.get(f"/api/review/queue/?cursor={forged.decode().rstrip('=')}")
    assert response.status_code == 400
    assert response.json() == {"cursor": ["invalid cursor"]}


def test_the_image_list_page_and_api_leave_the_output_out(world):
    rows = api(world["rita"]).get("/api/images/").json()["results"]
    by_image = {r["id"]: r for r in rows}
    assert "predicted_age_days" not in by_image[world["high"].pk]
    assert "score" not in by_image[world["high"].pk]
    assert by_image[world["seen"].pk]["predicted_age_days"] == 2000 + round(24 * 30.4375)
    html = page(world["rita"]).get("/images/").content.decode()
    row = html.split(f'data-image="{world["high"].pk}"')[1].split("</tr>")[0]
    assert "hidden" in row
    assert str(2000 + round(30 * 30.4375)) not in row

    decide(world["rita"], world["high"])
    rows = api(world["rita"]).get("/api/images/").json()["results"]
    assert {r["id"]: r for r in rows}[world["high"].pk]["predicted_age_days"] is not None


def test_the_prediction_list_holds_only_decided_images_of_a_blind_site(world):
    def listed(user) -> set[int]:
        return {p["image"] for p in api(user).get("/api/predictions/").json()["results"]}

    assert listed(world["rita"]) == {world["seen"].pk}
    assert listed(world["root"]) == {world["high"].pk, world["low"].pk, world["seen"].pk}
    decide(world["rita"], world["low"])
    assert listed(world["rita"]) == {world["seen"].pk, world["low"].pk}
    assert listed(world["ravi"]) == set()


def test_each_decision_records_whether_it_was_made_blind(world):
    blind = decide(world["rita"], world["high"], "correct", age_days=2100)
    seeing = decide(world["rita"], world["seen"])
    again = decide(world["rita"], world["high"])  # she has seen the model's output by now
    assert (blind.blind, seeing.blind, again.blind) == (True, False, False)
    event = AuditEvent.objects.filter(action="review.correct").get()
    assert event.after["blind"] is True
    listed = api(world["rita"]).get(f"/api/images/{world['high'].pk}/reviews/").json()
    assert [r["blind"] for r in listed["results"]] == [False, True]
    # A later switch never rewrites what a decision was.
    Site.objects.filter(slug="blind").update(blind_reading=False)
    assert Review.objects.get(pk=blind.pk).blind is True


def test_a_lead_switches_blind_reading_on_the_team_page_on_the_record(world):
    lena = page(world["lena"])
    team = lena.get("/team/").content.decode()
    assert 'id="reading-table"' in team
    assert "/review/sites/open/blind-reading/" in team
    response = lena.post("/review/sites/open/blind-reading/", {"blind_reading": "on"})
    assert response.status_code == 302
    assert Site.objects.get(slug="open").blind_reading is True
    event = AuditEvent.objects.get(action="site.change", site__slug="open")
    assert (event.actor_name, event.before, event.after) == (
        "lena",
        {"blind_reading": False},
        {"blind_reading": True},
    )
    assert api(world["rita"]).get(f"/api/images/{world['seen'].pk}/").json()["output_hidden"]
    lena.post("/review/sites/open/blind-reading/", {})  # unchecked: off
    assert Site.objects.get(slug="open").blind_reading is False

    # A reviewer may not; a site the user has no role on does not exist for them.
    assert page(world["rita"]).post("/review/sites/open/blind-reading/", {}).status_code == 403
    assert page(world["ravi"]).post("/review/sites/open/blind-reading/", {}).status_code == 404
    assert Site.objects.get(slug="open").blind_reading is False
    assert AuditEvent.objects.filter(action="site.change").count() == 2


def test_an_administrator_switches_it_in_the_admin_on_the_record(world):
    site = Site.objects.get(slug="open")
    form = page(world["root"]).get(f"/admin/ingest/site/{site.pk}/change/").content.decode()
    assert 'name="blind_reading"' in form
    response = page(world["root"]).post(
        f"/admin/ingest/site/{site.pk}/change/",
        {"slug": "open", "name": site.name, "blind_reading": "on"},
    )
    assert response.status_code == 302
    assert Site.objects.get(slug="open").blind_reading is True
    event = AuditEvent.objects.get(action="site.change", site=site)
    assert (event.actor_name, event.after) == ("root", {"blind_reading": True})


def test_a_set_limited_to_blind_decisions_keeps_images_decided_only_blind(world):
    rita, lena = world["rita"], world["lena"]
    blind_only = world["low"]
    decide(rita, blind_only)  # blind
    seen_then_blind = world["high"]
    Site.objects.filter(slug="blind").update(blind_reading=False)
    decide(rita, seen_then_blind)  # the model in view
    Site.objects.filter(slug="blind").update(blind_reading=True)
    decide(world["ravi"], seen_then_blind, "correct", age_days=2050)  # blind, but too late
    blind_site = Site.objects.get(slug="blind")
    everything = validation_set_create(name="all", sites=[blind_site], user=lena)
    only = validation_set_create(name="blind", sites=[blind_site], user=lena, blind_only=True)
    assert only.definition["blind_only"] is True
    assert set(eligible_images(validation_set=everything)) == {blind_only, seen_then_blind}
    assert list(eligible_images(validation_set=only)) == [blind_only]
    frozen = validation_set_freeze(validation_set=only, user=lena)
    assert frozen.definition["blind_only"] is True
    assert frozen.item_count == 1

    created = api(lena).post(
        "/api/validation-sets/", {"name": "api-blind", "sites": ["blind"], "blind_only": True}
    )
    assert created.status_code == 201, created.content
    assert created.json()["definition"]["blind_only"] is True


def test_a_report_counts_and_flags_corrections_equal_to_the_model_per_reader(world):
    rita, ravi, lena = world["rita"], world["ravi"], world["lena"]
    predicted = {i: world[i].predictions.get().age_days for i in ("high", "low", "seen")}
    # rita copies the model on high (blind? no: she is blind, so a blind copy) and on seen
    # (open site: the model in view), ravi corrects low far from the model.
    decide(rita, world["high"], "correct", age_days=predicted["high"] - COPY_TOLERANCE_DAYS)
    decide(rita, world["seen"], "correct", age_days=predicted["seen"] + 3)
    decide(ravi, world["low"], "correct", age_days=predicted["low"] - 200)
    sites = list(Site.objects.filter(slug__in=["blind", "open"]))
    chosen = validation_set_create(name="both", sites=sites, user=lena)
    frozen = validation_set_freeze(validation_set=chosen, user=lena)
    # A copy made after the freeze changes nothing.
    decide(lena, world["low"], "correct", age_days=predicted["low"])

    report = report_create(version=frozen, model=world["version"], build=False)
    result = report_compute(report=report)
    copied = result["copied_corrections"]
    assert (copied["model"], copied["tolerance_days"]) == ("m1", 7)
    assert (copied["corrections"], copied["copies"], copied["blind_copies"]) == (3, 2, 1)
    assert copied["flagged_images"] == sorted([world["high"].pk, world["seen"].pk])
    assert copied["by_reader"] == [
        {
            "reader": "ravi",
            "site": "blind",
            "corrections": 1,
            "copies": 0,
            "blind_corrections": 1,
            "blind_copies": 0,
        },
        {
            "reader": "rita",
            "site": "blind",
            "corrections": 1,
            "copies": 1,
            "blind_corrections": 1,
            "blind_copies": 1,
        },
        {
            "reader": "rita",
            "site": "open",
            "corrections": 1,
            "copies": 1,
            "blind_corrections": 0,
            "blind_copies": 0,
        },
    ]

    report.state, report.result = "done", result
    report.save(update_fields=["state", "result"])
    html = page(lena).get(f"/reports/{report.pk}/").content.decode()
    section = html.split('data-kind="copies"', 1)[1]
    assert "Corrections equal to the model" in html
    assert "⚑ 1" in section
    assert f"flagged images (2): {world['high'].pk}" in section
    assert "Equal to the model" in html  # the definition
