"""The team page: a cursor page of memberships by site and user name, with next and previous
links."""

import re

import pytest
from django.test import Client

from portal.accounts.models import Role
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
