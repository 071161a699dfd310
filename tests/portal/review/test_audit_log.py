"""The image history and the audit CSV: a blind second reader sees nothing of the first reader,
and no exported cell can run as a spreadsheet formula."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def history(user, image) -> list[tuple[str, str]]:
    rows = api(user).get(f"/api/images/{image.pk}/audit/").json()["results"]
    return [(e["actor"], e["action"]) for e in rows]


def test_a_blind_second_reader_sees_none_of_the_first_readers_views_leases_or_decision():
    site = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    carol, lead = f.user("carol", "reviewer", site), f.user("lena", "lead", site)
    version = f.model_version(card={"expected_error_months": {"overall": 1.0}})
    image = f.image(site, age_days=2000, dicom=True)
    f.prediction(image, version, age_days=2600, heatmap=True)
    first = api(alice)
    assert first.post("/api/review/queue/next/").json()["image"] == image.pk
    for path in ("", "dicom/", "heatmap/"):
        assert first.get(f"/api/images/{image.pk}/{path}").status_code == 200
    decided = first.post(
        f"/api/images/{image.pk}/reviews/", {"decision": "confirm", "revision": 0}, format="json"
    )
    assert decided.json()["status"] == "awaiting_second_read"
    assert api(carol).get(f"/api/images/{image.pk}/").status_code == 200

    # Bob reads second: alice's lease, views, downloads and decision are not in his history.
    assert history(bob, image) == [("carol", "image.view")]
    alice_rows = [
        ("alice", a) for a in ("review.confirm", "image.heatmap", "image.dicom", "image.view")
    ]
    assert history(alice, image)[1:] == [*alice_rows, ("alice", "lease.take")]
    assert ("alice", "lease.take") in history(lead, image)

    second = api(bob).post(
        f"/api/images/{image.pk}/reviews/", {"decision": "confirm", "revision": 1}, format="json"
    )
    assert second.json()["status"] == "confirmed"
    # Settled: the blind read is over and the whole history shows.
    assert ("alice", "lease.take") in history(bob, image)


def test_the_audit_csv_neutralises_cells_a_spreadsheet_would_run():
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    evil = f.user("@evil", "reviewer", north)
    cells = ['=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain"]
    for target in cells:
        audit_record(actor=evil, action=AuditAction.IMAGE_VIEW, site_id=north.pk, target=target)

    response = api(lead).get("/api/audit/export/?action=image.")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert [r["target"] for r in rows] == [
        '\'=HYPERLINK("http://x","y")',
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "plain",
    ]
    assert {r["actor"] for r in rows} == {"'@evil"}
    assert all(r["id"].isdigit() for r in rows)
