"""`manage.py user_add` in a real subprocess, the team page, and the audit log's CSV export."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from portal.accounts.models import AuditEvent, Membership
from tests.conftest import manage
from tests.portal import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.slow  # manage.py in a subprocess, several times
def test_user_add_grants_a_role_prints_a_generated_password_once_and_adds_sites(data_dir):
    f.site("north"), f.site("south")

    first = manage("user_add", "rita", "--role", "reviewer", "--site", "north", data_dir=data_dir)
    assert first.returncode == 0, first.stderr
    assert "rita is reviewer on north" in first.stdout
    password = first.stdout.split("password (shown once): ")[1].strip()
    assert Client().login(username="rita", password=password)

    again = manage(
        "user_add",
        "rita",
        "--role",
        "lead",
        "--site",
        "north",
        "--site",
        "south",
        data_dir=data_dir,
    )
    assert again.returncode == 0, again.stderr
    assert "password" not in again.stdout  # an existing user keeps their password
    roles = dict(Membership.objects.filter(user__username="rita").values_list("site__slug", "role"))
    assert roles == {"north": "lead", "south": "lead"}
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "target"))
    assert actions == [
        ("user.create", "rita"),
        ("role.grant", "rita"),
        ("role.change", "rita"),
        ("role.grant", "rita"),
    ]


@pytest.mark.slow  # manage.py in a subprocess, several times
def test_user_add_with_a_password_and_usage_errors(data_dir):
    f.site("north")
    given = manage(
        "user_add",
        "ulla",
        "--role",
        "uploader",
        "--site",
        "north",
        "--password",
        "pw-123-abc",
        data_dir=data_dir,
    )
    assert given.returncode == 0, given.stderr
    assert "shown once" not in given.stdout
    assert get_user_model().objects.get(username="ulla").check_password("pw-123-abc")

    unknown = manage("user_add", "x", "--role", "reviewer", "--site", "nowhere", data_dir=data_dir)
    assert unknown.returncode == 2
    assert "no such site: nowhere" in unknown.stderr
    bad_role = manage("user_add", "x", "--role", "boss", "--site", "north", data_dir=data_dir)
    assert bad_role.returncode == 2
    assert not get_user_model().objects.filter(username="x").exists()


def test_a_lead_manages_the_team_of_their_site_only():
    north, south = f.site("north"), f.site("south")
    lead = f.user("lena", "lead", north)
    f.user("sam", "reviewer", south)
    client = Client()
    client.force_login(lead)

    page = client.get("/team/")
    assert b"sam" not in page.content
    granted = client.post("/team/", {"username": "nina", "role": "reviewer", "site": "north"})
    assert granted.status_code == 302
    assert Membership.objects.get(user__username="nina").role == "reviewer"
    assert "password (shown once)" in client.get("/team/").content.decode()
    refused = client.post("/team/", {"username": "nina", "role": "lead", "site": "south"})
    assert refused.status_code == 200  # the form says south is not a choice
    assert not Membership.objects.filter(site=south, user__username="nina").exists()

    membership = Membership.objects.get(user__username="nina")
    assert client.post(f"/team/{membership.pk}/revoke/").status_code == 302
    assert not Membership.objects.filter(user__username="nina").exists()
    assert list(
        AuditEvent.objects.filter(target="nina").order_by("id").values_list("action", "actor_name")
    ) == [("user.create", "lena"), ("role.grant", "lena"), ("role.revoke", "lena")]


def test_leads_filter_and_export_the_audit_log_of_their_sites_as_csv():
    north, south = f.site("north"), f.site("south")
    lead = f.user("lena", "lead", north)
    alice = f.user("alice", "reviewer", north)
    f.user("sam", "reviewer", south)
    img = f.image(north)
    client = Client()
    client.force_login(alice)
    client.post(
        f"/api/images/{img.pk}/reviews/",
        {"decision": "correct", "age_days": 1200, "revision": 0},
        content_type="application/json",
    )
    client.force_login(lead)

    listed = client.get("/api/audit/?action=review.").json()["results"]
    assert [(e["action"], e["actor"], e["image"]) for e in listed] == [
        ("review.correct", "alice", img.pk)
    ]
    export = client.get("/api/audit/export/?site=north")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert export["Content-Type"] == "text/csv"
    assert {r["action"] for r in rows} >= {"role.grant", "review.correct"}
    assert all(r["site"] == "north" for r in rows)
    assert "sam" not in {r["target"] for r in rows}
    correction = next(r for r in rows if r["action"] == "review.correct")
    assert '"curated_age_days": 1200' in correction["after"]
    assert correction["at"].endswith("+00:00")  # UTC


@pytest.mark.slow  # manage.py in a subprocess, several times
def test_user_add_refuses_weak_passwords_mixed_scripts_and_the_last_leads_downgrade(data_dir):
    f.site("north")
    weak = manage(
        "user_add",
        "nina",
        "--role",
        "reviewer",
        "--site",
        "north",
        "--password",
        "1234",
        data_dir=data_dir,
    )
    assert weak.returncode == 1
    assert "password: This password is too short" in weak.stderr
    mixed = manage("user_add", "\u0430dmin", "--role", "lead", "--site", "north", data_dir=data_dir)
    assert mixed.returncode == 1
    assert "mixes scripts (Cyrillic, Latin)" in mixed.stderr
    assert not get_user_model().objects.exists()

    lead = manage("user_add", "lena", "--role", "lead", "--site", "north", data_dir=data_dir)
    assert lead.returncode == 0, lead.stderr
    downgrade = manage(
        "user_add", "lena", "--role", "reviewer", "--site", "north", data_dir=data_dir
    )
    assert downgrade.returncode == 1
    assert "north must keep a lead: lena is its last lead" in downgrade.stderr
    assert Membership.objects.get(user__username="lena").role == "lead"
