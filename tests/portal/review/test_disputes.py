"""The leads' adjudication list: every disputed case of their sites reaches them whatever its
score (or with no score at all), reader 1 and reader 2 side by side; the home page's counts
link to their lists; the history says decisions in words and changes as `field: old -> new`."""

import re

import pytest
from rest_framework.test import APIClient

from inference_worker.ages import years_months_text
from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.review import selectors
from portal.review.history import change_text
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def decide(user, image, revision: int, **body):
    response = api(user).post(
        f"/api/images/{image.pk}/reviews/", {**body, "revision": revision}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def dispute(image, first, second, *, age_days: int = 1500) -> None:
    """Reader 1 corrects the age, reader 2 confirms the recorded one: a dispute."""
    decide(first, image, 0, decision="correct", age_days=age_days, comment="growth plates")
    assert decide(second, image, 1, decision="confirm")["status"] == "disputed"


@pytest.fixture
def world(settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 3.0}
    east = f.site("east", double_reading=True)
    west = f.site("west", double_reading=True)
    alice, bob = f.user("alice", "reviewer", east, west), f.user("bob", "reviewer", east, west)
    lena = f.user("lena", "lead", east)
    f.user("walt", "lead", west)
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    high, low, unscored = (f.image(east, age_days=1000) for _ in range(3))
    f.prediction(high, version, age_days=1000 + 900)  # score ~4.9: in the queue
    f.prediction(low, version, age_days=1000 + 30)  # score ~0.2: never in the queue
    elsewhere = f.image(west, age_days=1000)
    for image in (high, low, unscored, elsewhere):
        dispute(image, alice, bob)
    return {
        "lena": lena,
        "alice": alice,
        "images": (high, low, unscored),
        "elsewhere": elsewhere,
        "version": version,
    }


def test_every_disputed_case_of_the_leads_sites_is_listed_whatever_its_score(world):
    high, low, unscored = world["images"]
    queue = selectors.queue(user=world["lena"], filters=selectors.QueueFilters())
    assert [p.image_id for p in queue] == [high.pk]  # the queue alone would miss two

    body = api(world["lena"]).get("/api/review/disputes/").json()

    rows = body["results"]
    assert [r["image"] for r in rows] == [high.pk, low.pk, unscored.pk]  # west's is not hers
    row = rows[1]
    assert (row["site"], row["status"], row["revision"], row["lease"]) == (
        "east",
        "disputed",
        2,
        None,
    )
    first, second = row["first_read"], row["second_read"]
    assert (first["reviewer"], first["kind"], first["decision"], first["age_days"]) == (
        "alice",
        "first_read",
        "correct",
        1500,
    )
    assert first["comment"] == "growth plates"
    assert (second["reviewer"], second["decision"], second["age_days"]) == ("bob", "confirm", 1000)
    assert first["text"] == (
        f"alice corrected the age to {years_months_text(1500)}; reason: “growth plates” "
        "(first read)"
    )
    assert second["text"].startswith("bob confirmed the recorded age")
    assert row["disputed_at"] == second["created_at"]
    # No model output in a dispute row (blind reading hides it from leads too).
    assert not {"score", "predicted_age_days", "residual_days"} & set(row)


def test_the_list_filters_by_site_and_a_lead_adjudicates_from_it(world):
    high, low, unscored = world["images"]
    lena = world["lena"]
    assert api(lena).get("/api/review/disputes/?site=west").json()["results"] == []

    settled = decide(lena, low, 2, decision="correct", age_days=1200)

    assert (settled["status"], settled["kind"]) == ("adjudicated", "adjudication")
    rows = api(lena).get("/api/review/disputes/").json()["results"]
    assert [r["image"] for r in rows] == [high.pk, unscored.pk]
    assert settled["text"] == f"lena adjudicated: corrected the age to {years_months_text(1200)}"


def test_the_list_is_for_leads(world):
    assert api(world["alice"]).get("/api/review/disputes/").status_code == 403
    client = APIClient()
    client.force_login(world["alice"])
    assert client.get("/review/disputes/").status_code == 403


def test_the_page_shows_reader_1_and_reader_2_side_by_side(world):
    high, low, unscored = world["images"]
    client = APIClient()
    client.force_login(world["lena"])

    html = client.get("/review/disputes/").content.decode()

    for image in (high, low, unscored):
        assert f'data-image="{image.pk}"' in html
    assert f'data-image="{world["elsewhere"].pk}"' not in html
    assert "<th>Reader 1</th><th>Reader 2</th>" in html
    row = re.search(rf'<tr data-image="{low.pk}">.*?</tr>', html, re.S).group(0)
    reader_1 = re.search(r'data-reader="1">(.*?)</td>', row, re.S).group(1)
    reader_2 = re.search(r'data-reader="2">(.*?)</td>', row, re.S).group(1)
    assert f"corrected the age to {years_months_text(1500)}" in reader_1
    assert "growth plates" in reader_1
    assert "alice" in reader_1
    assert f"confirmed the recorded age, {years_months_text(1000)}" in reader_2
    assert "bob" in reader_2
    assert f'href="/images/{low.pk}/"' in row


def test_the_queue_page_points_a_lead_to_the_disputes(world):
    client = APIClient()
    client.force_login(world["lena"])
    html = client.get("/review/").content.decode()
    assert re.search(r'id="disputes-note">.*3 disputed cases', html)
    assert 'href="/review/disputes/"' in html
    client.force_login(world["alice"])
    assert 'id="disputes-note"' not in client.get("/review/").content.decode()


def test_every_home_count_links_to_its_list(world):
    lena, alice = world["lena"], world["alice"]
    client = APIClient()
    client.force_login(lena)
    html = client.get("/").content.decode()
    row = re.search(r'<tr data-site="east">.*?</tr>', html, re.S).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[1:]  # after the site's name
    assert len(cells) == 4 + 7, cells  # images, predictions, queue, reviewed, 7 statuses
    assert all("<a href=" in cell for cell in cells), cells
    disputed = re.search(r'data-status="disputed"><a href="([^"]+)"[^>]*>(\d+)<', row)
    assert disputed.groups() == ("/review/disputes/?site=east", "3")
    reviewed = re.search(r'class="reviewed"><a href="([^"]+)">(\d+)<', row)
    assert reviewed.group(2) == "3"
    # The link's list holds as many as the count says.
    listed = client.get(reviewed.group(1).replace("&amp;", "&")).content.decode()
    assert listed.count("<tr data-image=") == 3
    # A reviewer's Disputed count opens the image list of disputed images instead.
    client.force_login(alice)
    html = client.get("/").content.decode()
    row = re.search(r'<tr data-site="east">.*?</tr>', html, re.S).group(0)
    assert 'data-status="disputed"><a href="/images/?site=east&amp;status=disputed"' in row


def test_the_reviewed_filter_of_the_image_list(world):
    north = f.site("north")
    rita = f.user("rita", "reviewer", north)
    fresh, done = f.image(north), f.image(north)
    decide(rita, done, 0, decision="confirm")
    ids = lambda q: [r["id"] for r in api(rita).get(f"/api/images/?{q}").json()["results"]]  # noqa: E731
    assert ids("reviewed=true") == [done.pk]
    assert ids("reviewed=false") == [fresh.pk]
    assert api(rita).get("/api/images/?reviewed=maybe").status_code == 400
    assert api(rita).get("/api/images/?reviewed=").status_code == 400


def test_the_history_says_decisions_in_words_and_changes_as_old_to_new(world):
    high = world["images"][0]
    lena = world["lena"]
    decide(lena, high, 2, decision="exclude", reason="poor_quality")
    audit_record(
        actor=lena,
        action=AuditAction.SITE_CHANGE,
        site_id=high.site_id,
        image_id=high.pk,
        before={"blind_reading": False, "meta": {"a": 1}},
        after={"blind_reading": True, "meta": {"a": 2}},
    )

    events = api(lena).get(f"/api/images/{high.pk}/audit/").json()["results"]
    texts = {e["action"]: e["text"] for e in events}
    assert texts["review.adjudicate"] == (
        "lena adjudicated: excluded the image: poor quality: status: disputed -> adjudicated, "
        "outcome: — -> exclude, revision: 2 -> 3"
    )
    assert texts["review.correct"].startswith(
        f"alice corrected the age to {years_months_text(1500)} (first read): "
        f"status: unreviewed -> awaiting second read"
    )
    assert texts["site.change"] == (
        "lena site.change: blind reading: no -> yes, meta: (a: 1) -> (a: 2)"
    )
    reviews = api(lena).get(f"/api/images/{high.pk}/reviews/").json()["results"]
    assert reviews[0]["text"] == "lena adjudicated: excluded the image: poor quality"
    for text in [*texts.values(), *(r["text"] for r in reviews)]:
        assert "{" not in text, text
        assert "'" not in text, text

    # The audit page prints the same words, never a dict's repr.
    client = APIClient()
    client.force_login(lena)
    html = client.get(f"/audit/?image={high.pk}").content.decode()
    assert "status: disputed -&gt; adjudicated" in html
    assert "{&#x27;" not in html
    assert "{'" not in html


def test_change_text_reads_ages_and_leaves_out_what_stayed():
    assert change_text(
        {"curated_age_days": None, "revision": 1}, {"curated_age_days": 400, "revision": 1}
    ) == (f"curated age: — -> {years_months_text(400)}")
    assert change_text(None, {"expires_at": "2026-12-06T10:05:00+00:00"}) == (
        "held until: 2026-12-06 10:05 UTC"
    )
    assert change_text({"roles": ["a", "b"]}, {}) == "roles: a, b -> (removed)"


def test_a_blind_second_reader_sees_no_first_read_in_words(world):
    east = world["images"][0].site
    carol = f.user("carol", "reviewer", east)
    image = f.image(east)
    decide(world["alice"], image, 0, decision="correct", age_days=1500)
    for path in ("reviews", "audit"):
        rows = api(carol).get(f"/api/images/{image.pk}/{path}/").json()["results"]
        assert not [r for r in rows if "alice" in r.get("text", "")], rows
