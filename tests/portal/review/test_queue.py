"""The outlier queue: scores stored with predictions, threshold and order, filters, cursor
pages, and leases (atomic under concurrency, expiring, ended by a decision)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from portal.ingest.models import Image
from portal.predictions.models import Prediction
from portal.predictions.services import prediction_results_store
from portal.review import selectors, services
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def north():
    return f.site("north")


def test_the_worker_answer_is_stored_with_residual_and_score_from_the_model_card(north):
    card = {"expected_error_months": {"overall": 6.0, "1-3 F": 2.0}}
    version = f.model_version(card=card)
    girl = f.image(north, age_days=700, sex="F")  # predicted 1-3 years: the "1-3 F" error
    boy = f.image(north, age_days=700, sex="M")  # no "1-3 M" entry: the overall error
    answer = {
        "job": None,
        "model": version.name,
        "results": [
            {"image": girl.pk, "age_days": 700 + 122, "heatmap": "", "ms": {}},
            {"image": boy.pk, "age_days": 700 - 122, "heatmap": "", "ms": {}},
        ],
    }
    # Read 13.7 years older than recorded: farther than any clerical slip reaches, so the
    # triage score is the residual ratio alone (`predictions.triage`).
    far = f.image(north, age_days=100, sex="F")
    answer["results"].append({"image": far.pk, "age_days": 100 + 5000, "heatmap": "", "ms": {}})
    prediction_results_store(answer=answer)

    stored = {p.image_id: p for p in Prediction.objects.all()}
    assert stored[girl.pk].residual_days == 122
    assert stored[boy.pk].residual_days == -122
    # The same 4 months weigh three times more against the girl's 2-month expected error; triage
    # adds to the ratio (4 months is also what a day/month swap makes), never takes from it.
    assert stored[girl.pk].score >= 122 / 30.4375 / 2.0
    assert stored[boy.pk].score >= 122 / 30.4375 / 6.0
    assert stored[girl.pk].score > stored[boy.pk].score
    assert stored[far.pk].score == pytest.approx(5000 / 30.4375 / 6.0, abs=1e-3)


def _queued(north, version, scores: list[float], **kwargs) -> list[Image]:
    """Images whose predictions get exactly these scores (overall expected error 6 months)."""
    images = []
    for score in scores:
        img = f.image(north, age_days=2000, **kwargs)
        f.prediction(img, version, age_days=2000 + round(score * 6 * 30.4375))
        images.append(img)
    return images


def test_the_queue_holds_scores_above_the_threshold_highest_first(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 2.0}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    low, mid, high, below = _queued(north, version, [2.5, 4.0, 9.0, 1.5])
    f.model_version("old", active=False)
    alice = f.user("alice", "reviewer", north)

    body = api(alice).get("/api/review/queue/").json()

    assert [r["image"] for r in body["results"]] == [high.pk, mid.pk, low.pk]
    first = body["results"][0]
    assert set(first) == {
        "image",
        "site",
        "sex",
        "score",
        "recorded_age_days",
        "predicted_age_days",
        "residual_days",
        "why",
        "status",
    }
    assert (first["site"], first["status"], first["recorded_age_days"]) == (
        "north",
        "unreviewed",
        2000,
    )
    assert first["score"] == pytest.approx(9.0, abs=0.01)
    assert body["next"] is None
    assert body["previous"] is None


def test_queue_filters_by_site_sex_age_group_and_status(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    south = f.site("south")
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    alice = f.user("alice", "reviewer", north, south)
    f.user("zed", "reviewer", f.site("west"))
    girl = f.image(north, age_days=800, sex="F")  # 2.2 years
    boy = f.image(north, age_days=3000, sex="M")  # 8.2 years
    southern = f.image(south, age_days=3000, sex="M")
    for img in (girl, boy, southern):
        f.prediction(img, version, age_days=img.age_days + 400)
    client = api(alice)

    def ids(query: str) -> set[int]:
        return {r["image"] for r in client.get(f"/api/review/queue/?{query}").json()["results"]}

    assert ids("") == {girl.pk, boy.pk, southern.pk}
    assert ids("site=north") == {girl.pk, boy.pk}
    assert ids("sex=M") == {boy.pk, southern.pk}
    assert ids("age_group=1-3") == {girl.pk}
    assert ids("status=awaiting_second_read") == set()
    assert client.get("/api/review/queue/?age_group=old").status_code == 400
    # Another site's reviewer sees none of it.
    zed = api(f.user("zara", "reviewer", f.site("far")))
    assert zed.get("/api/review/queue/").json()["results"] == []


def test_cursor_pages_cover_the_queue_once_in_order_and_go_back(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 0.5}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    # Ties in score are broken by id, so no case is skipped or repeated across pages.
    _queued(north, version, [3.0] * 4 + [float(s) for s in range(1, 8)])
    client = api(f.user("alice", "reviewer", north))
    expected = [
        p.image_id
        for p in selectors.queue(user=client.handler._force_user, filters=selectors.QueueFilters())
    ]

    seen, pages, url = [], [], "/api/review/queue/?limit=3"
    while url:
        body = client.get(url).json()
        pages.append(body)
        seen += [r["image"] for r in body["results"]]
        url = body["next"]

    assert seen == expected
    assert len(seen) == 11
    assert len(pages) == 4
    back = client.get(pages[2]["previous"]).json()
    assert [r["image"] for r in back["results"]] == [r["image"] for r in pages[1]["results"]]
    assert client.get("/api/review/queue/?cursor=garbage").status_code == 400


def test_next_leases_a_case_which_leaves_other_queues_until_it_expires(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0, "LEASE_SECONDS": 300}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    top, second = _queued(north, version, [9.0, 5.0])
    alice, bob = f.user("alice", "reviewer", north), f.user("bob", "reviewer", north)

    claim = api(alice).post("/api/review/queue/next/")
    assert claim.status_code == 200
    assert claim.json()["image"] == top.pk
    top.refresh_from_db()
    assert top.lease_holder == alice
    assert top.lease_expires_at > timezone.now()
    bob_queue = api(bob).get("/api/review/queue/").json()["results"]
    assert [r["image"] for r in bob_queue] == [second.pk]
    assert api(bob).post("/api/review/queue/next/").json()["image"] == second.pk
    # Bob cannot decide alice's case while she holds it.
    taken = api(bob).post(
        f"/api/images/{top.pk}/reviews/", {"decision": "confirm", "revision": 0}, format="json"
    )
    assert taken.status_code == 409
    assert "holds this case" in taken.json()["detail"]

    # Expired: the case returns to the queue.
    Image.objects.filter(pk=top.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert top.pk in [r["image"] for r in api(bob).get("/api/review/queue/").json()["results"]]


def test_a_decision_ends_the_lease_and_the_case_leaves_the_queue(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    (case,) = _queued(north, version, [4.0])
    alice = f.user("alice", "reviewer", north)
    client = api(alice)
    assert client.post("/api/review/queue/next/").json()["image"] == case.pk

    decided = client.post(
        f"/api/images/{case.pk}/reviews/", {"decision": "confirm", "revision": 0}, format="json"
    )

    assert decided.status_code == 201
    case.refresh_from_db()
    assert case.lease_holder is None
    assert case.lease_expires_at is None
    assert client.get("/api/review/queue/").json()["results"] == []
    assert client.post("/api/review/queue/next/").status_code == 204
    actions = [e["action"] for e in client.get(f"/api/images/{case.pk}/audit/").json()["results"]]
    assert actions == ["review.confirm", "lease.take"]


def test_taking_the_next_case_releases_the_previous_lease(north, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    first, second = _queued(north, version, [9.0, 5.0])
    alice = f.user("alice", "reviewer", north)

    assert services.queue_next(user=alice, filters=selectors.QueueFilters()).image_id == first.pk
    assert services.queue_next(user=alice, filters=selectors.QueueFilters()).image_id == second.pk

    first.refresh_from_db()
    assert first.lease_holder is None


def test_disputed_cases_are_queued_for_leads_only():
    site = f.site("east", double_reading=True)
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    img = f.image(site, age_days=2000)
    f.prediction(img, version, age_days=2800)
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    lead = f.user("lena", "lead", site)
    for user, revision, decision in ((alice, 0, "confirm"), (bob, 1, "exclude")):
        api(user).post(
            f"/api/images/{img.pk}/reviews/",
            {"decision": decision, "reason": "adult", "revision": revision},
            format="json",
        )
    img.refresh_from_db()
    assert img.status == "disputed"

    assert api(alice).get("/api/review/queue/").json()["results"] == []
    lead_queue = api(lead).get("/api/review/queue/").json()["results"]
    assert [(r["image"], r["status"]) for r in lead_queue] == [(img.pk, "disputed")]


@pytest.mark.django_db(transaction=True)
def test_reviewers_asking_at_the_same_moment_never_get_the_same_case(settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    north = f.site("north")
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    _queued(north, version, [2.0 + i / 10 for i in range(30)])
    reviewers = [f.user(f"r{i}", "reviewer", north) for i in range(8)]
    start = threading.Barrier(len(reviewers))
    claims: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(user) -> None:
        taken = []
        try:
            start.wait()
            for _ in range(3):
                claim = services.queue_next(user=user, filters=selectors.QueueFilters())
                taken.append(claim.image_id)
                # Keep the lease: decide nothing, so that a released case never comes back.
                Image.objects.filter(pk=claim.image_id).update(lease_holder=None)
                Image.objects.filter(pk=claim.image_id).update(status="excluded")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            claims[user.username] = taken
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors, errors
    every = [image for taken in claims.values() for image in taken]
    assert len(every) == 24
    assert len(set(every)) == 24, "a case was served twice"
