"""Decisions through the REST API: immutable reviews, derived status, stale revisions refused,
double reading ending in adjudication, first reads hidden, and an audit row for each."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from rest_framework.test import APIClient

from inference_worker.ages import AGE_LIMIT_DAYS
from portal.accounts.models import AuditEvent
from portal.core.models import AppendOnlyError
from portal.ingest.models import Image
from portal.review.models import Review
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def decide(user, image, revision: int, **body):
    return api(user).post(
        f"/api/images/{image.pk}/reviews/", {**body, "revision": revision}, format="json"
    )


@pytest.fixture
def north():
    return f.site("north")


def test_correction_creates_a_review_and_derives_status_and_curated_age(north):
    alice = f.user("alice", "reviewer", north)
    img = f.image(north, age_days=1000)

    response = decide(alice, img, 0, decision="correct", age_days=1400)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["decision"], body["age_days"], body["kind"]) == ("correct", 1400, "single")
    assert (body["revision"], body["status"], body["based_on_revision"]) == (1, "corrected", 0)
    img.refresh_from_db()
    assert (img.status, img.curated_age_days, img.age_days, img.revision) == (
        "corrected",
        1400,
        1000,
        1,
    )
    event = AuditEvent.objects.get(action="review.correct")
    assert event.actor_name == "alice"
    assert event.image_id == img.pk
    assert event.before["status"] == "unreviewed"
    assert event.after["curated_age_days"] == 1400


def test_a_stale_revision_is_refused_with_409_and_the_current_state(north):
    alice, bob = f.user("alice", "reviewer", north), f.user("bob", "reviewer", north)
    img = f.image(north)
    assert decide(alice, img, 0, decision="confirm").status_code == 201

    response = decide(bob, img, 0, decision="exclude", reason="poor_quality")

    assert response.status_code == 409
    body = response.json()
    assert (body["revision"], body["status"]) == (1, "confirmed")
    assert "changed" in body["detail"]
    assert Review.objects.filter(image=img).count() == 1
    # Deciding again on the fresh revision works.
    assert decide(bob, img, 1, decision="exclude", reason="poor_quality").status_code == 201
    img.refresh_from_db()
    assert (img.status, img.curated_age_days, img.revision) == ("excluded", None, 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "correct", "age_days": AGE_LIMIT_DAYS}, "age_days"),
        ({"decision": "correct", "age_days": -1}, "age_days"),
        ({"decision": "correct"}, "age_days"),
        ({"decision": "exclude"}, "reason"),
        ({"decision": "exclude", "reason": "other"}, "comment"),
        ({"decision": "maybe"}, "decision"),
    ],
)
def test_bad_decisions_get_field_errors_and_change_nothing(north, body, field):
    alice = f.user("alice", "reviewer", north)
    img = f.image(north)

    response = decide(alice, img, 0, **body)

    assert response.status_code == 400
    assert field in response.json()
    img.refresh_from_db()
    assert (img.revision, img.status) == (0, "unreviewed")


def test_uploaders_cannot_decide_and_other_sites_do_not_exist(north):
    south = f.site("south")
    uploader = f.user("ulla", "uploader", north)
    stranger = f.user("sam", "reviewer", south)
    img = f.image(north)

    assert decide(uploader, img, 0, decision="confirm").status_code == 403
    assert decide(stranger, img, 0, decision="confirm").status_code == 404
    assert not Review.objects.exists()


def test_double_reading_disagreement_is_disputed_and_a_lead_adjudicates():
    site = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    lead = f.user("lena", "lead", site)
    img = f.image(site, age_days=1000)

    first = decide(alice, img, 0, decision="correct", age_days=1500)
    assert (first.status_code, first.json()["status"]) == (201, "awaiting_second_read")
    # The first reader cannot also be the second.
    again = decide(alice, img, 1, decision="confirm")
    assert again.status_code == 409
    assert "another reviewer" in again.json()["detail"]
    # Blind: bob sees neither the first decision nor its audit row; the author and leads do.
    assert api(bob).get(f"/api/images/{img.pk}/reviews/").json()["results"] == []
    bob_history = api(bob).get(f"/api/images/{img.pk}/audit/").json()["results"]
    assert not [e for e in bob_history if e["action"].startswith("review.")]
    assert api(bob).get(f"/api/images/{img.pk}/").json()["curated_age_days"] is None
    assert len(api(alice).get(f"/api/images/{img.pk}/reviews/").json()["results"]) == 1
    assert len(api(lead).get(f"/api/images/{img.pk}/reviews/").json()["results"]) == 1

    second = decide(bob, img, 1, decision="confirm")
    assert (second.status_code, second.json()["status"]) == (201, "disputed")
    assert len(api(bob).get(f"/api/images/{img.pk}/reviews/").json()["results"]) == 2
    # Only a lead settles a dispute.
    assert decide(bob, img, 2, decision="confirm").status_code == 403
    settled = decide(lead, img, 2, decision="correct", age_days=1450)
    assert (settled.status_code, settled.json()["status"], settled.json()["kind"]) == (
        201,
        "adjudicated",
        "adjudication",
    )
    img.refresh_from_db()
    assert (img.status, img.outcome, img.curated_age_days, img.revision) == (
        "adjudicated",
        "correct",
        1450,
        3,
    )
    actions = list(AuditEvent.objects.filter(image_id=img.pk).values_list("action", flat=True))
    assert actions.count("review.correct") == 1
    assert "review.adjudicate" in actions


def test_double_reading_agreement_settles_with_the_mean_corrected_age(settings):
    settings.REVIEW = {**settings.REVIEW, "DOUBLE_READ_TOLERANCE_MONTHS": 3}
    site = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    near, far = f.image(site, age_days=1000), f.image(site, age_days=1000)

    decide(alice, near, 0, decision="correct", age_days=1400)
    assert decide(bob, near, 1, decision="correct", age_days=1460).json()["status"] == "corrected"
    decide(alice, far, 0, decision="correct", age_days=1400)
    # 3 months = 91.3 days: 1500 is too far from 1400.
    assert decide(bob, far, 1, decision="correct", age_days=1500).json()["status"] == "disputed"
    near.refresh_from_db()
    assert near.curated_age_days == 1430


def test_reviews_and_audit_events_cannot_be_altered(north):
    alice = f.user("alice", "reviewer", north)
    img = f.image(north)
    decide(alice, img, 0, decision="confirm")
    review, event = Review.objects.get(), AuditEvent.objects.get(action="review.confirm")

    with pytest.raises(AppendOnlyError):
        review.save()
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="review.exclude")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    # Below the ORM, the database refuses too.
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_auditevent SET action = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent")
    assert AuditEvent.objects.get(pk=event.pk).action == "review.confirm"
    assert Image.objects.get(pk=img.pk).status == "confirmed"


def test_views_and_downloads_land_in_the_image_history(north):
    alice = f.user("alice", "reviewer", north)
    version = f.model_version()
    img = f.image(north, dicom=True)
    f.prediction(img, version, age_days=1500, heatmap=True)
    client = api(alice)

    assert client.get(f"/api/images/{img.pk}/").status_code == 200
    assert client.get(f"/api/images/{img.pk}/dicom/").status_code == 200
    assert client.get(f"/api/images/{img.pk}/heatmap/").status_code == 200

    history = client.get(f"/api/images/{img.pk}/audit/").json()["results"]
    assert [e["action"] for e in history] == ["image.heatmap", "image.dicom", "image.view"]
    assert {e["actor"] for e in history} == {"alice"}
