"""The team page: a cursor page of memberships by site and user name, with next and previous
links; the accounts rules (passwords, names, a site's last lead) with their reasons."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from portal.accounts.models import AuditEvent, Membership, Role
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def _rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>", html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_team_page_two_holds_the_next_memberships_by_site_and_name():
    north, south = f.site("north"), f.site("south")
    lead = f.user("lead", Role.LEAD, north, south)
    for name in ["rita", "bo"]:
        f.user(name, Role.REVIEWER, north, south)
    client = Client()
    client.force_login(lead)

    first = client.get("/team/", {"limit": 4}).content.decode()
    assert _rows(first) == [("bo", "north"), ("lead", "north"), ("rita", "north"), ("bo", "south")]
    assert _link(first, "prev") is None
    second = client.get(_link(first, "next")).content.decode()
    assert _rows(second) == [("lead", "south"), ("rita", "south")]
    assert _link(second, "next") is None
    assert _rows(client.get(_link(second, "prev")).content.decode()) == _rows(first)
    assert client.get("/team/", {"cursor": "nonsense"}).status_code == 404


def _lead_client(lead) -> Client:
    client = Client()
    client.force_login(lead)
    return client


def test_the_team_page_refuses_a_weak_password_and_creates_nothing():
    north = f.site("north")
    client = _lead_client(f.user("lena", Role.LEAD, north))

    page = client.post(
        "/team/", {"username": "nina", "role": "reviewer", "site": "north", "password": "1"}
    )

    assert page.status_code == 200
    assert "This password is too short" in str(page.context["form"].errors["password"])
    assert not get_user_model().objects.filter(username="nina").exists()
    assert not AuditEvent.objects.filter(target="nina").exists()


def test_the_team_page_normalises_names_and_refuses_mixed_scripts():
    north = f.site("north")
    client = _lead_client(f.user("lena", Role.LEAD, north))

    mixed = client.post("/team/", {"username": "ni\u043da", "role": "reviewer", "site": "north"})
    assert mixed.status_code == 200
    assert "mixes scripts (Cyrillic, Latin)" in str(mixed.context["form"].errors["username"])
    spaced = client.post(
        "/team/", {"username": "\u00a0ｎｉｎａ ", "role": "reviewer", "site": "north"}
    )
    assert spaced.status_code == 302
    assert list(get_user_model().objects.values_list("username", flat=True).order_by("id")) == [
        "lena",
        "nina",
    ]


def test_a_lead_cannot_revoke_or_downgrade_themselves_as_the_last_lead():
    north = f.site("north")
    lena = f.user("lena", Role.LEAD, north)
    client = _lead_client(lena)
    own = lena.memberships.get()

    revoked = client.post(f"/team/{own.pk}/revoke/", follow=True)
    assert "north must keep a lead: lena is its last lead" in revoked.content.decode()
    downgraded = client.post("/team/", {"username": "lena", "role": "reviewer", "site": "north"})
    assert downgraded.status_code == 200
    assert "north must keep a lead" in str(downgraded.context["form"].non_field_errors())
    assert Membership.objects.get(pk=own.pk).role == "lead"
    assert not AuditEvent.objects.filter(action__in=["role.revoke", "role.change"]).exists()

    f.user("max", Role.LEAD, north)
    assert client.post(f"/team/{own.pk}/revoke/").status_code == 302
    assert not Membership.objects.filter(pk=own.pk).exists()
