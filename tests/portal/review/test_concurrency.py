"""Two decisions on one revision of an image at the same moment, through the REST API, each in
its own thread and database connection: one lands (201), the other is refused (409)."""

import pytest
from rest_framework.test import APIClient

from portal.accounts.models import AuditEvent
from portal.ingest.models import Image
from portal.review.models import Review
from tests.conftest import at_once
from tests.portal import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def decide(user, image: Image, **body):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(f"/api/images/{image.pk}/reviews/", body, format="json")


def test_two_decisions_on_one_revision_at_once_give_one_201_and_one_409(site):
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    image = f.image(site, age_days=1000)

    answers = at_once(
        lambda: decide(alice, image, decision="confirm", revision=0),
        lambda: decide(bob, image, decision="correct", age_days=1400, revision=0),
    )

    assert sorted(a.status_code for a in answers) == [201, 409], [a.data for a in answers]
    landed = next(a for a in answers if a.status_code == 201).json()
    refused = next(a for a in answers if a.status_code == 409).json()
    assert (refused["revision"], refused["status"]) == (1, landed["status"])
    (review,) = Review.objects.all()
    assert review.pk == landed["id"]
    image.refresh_from_db()
    assert (image.revision, image.status) == (1, landed["status"])
    assert AuditEvent.objects.filter(action__startswith="review.").count() == 1


def test_the_same_decision_sent_twice_at_once_lands_once(site):
    alice = f.user("alice", "reviewer", site)
    image = f.image(site, age_days=1000)

    answers = at_once(*[lambda: decide(alice, image, decision="confirm", revision=0)] * 2)

    assert sorted(a.status_code for a in answers) == [201, 409]
    assert Review.objects.count() == 1
