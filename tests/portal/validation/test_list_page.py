"""The validation-set list page: a cursor page of sets by name, with next and previous links."""

import re

import pytest
from django.test import Client

from portal.validation.services import validation_set_create
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="/validation-sets/([^/"]+)/">', html)


def _link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_set_list_page_two_holds_the_next_sets_by_name():
    north = f.site("north")
    lead = f.user("lead", "lead", north)
    for name in ["e", "a", "d", "c", "b"]:
        validation_set_create(name=name, sites=[north], user=lead)
    client = Client()
    client.force_login(lead)

    first = client.get("/validation-sets/", {"limit": 2}).content.decode()
    assert (_names(first), _link(first, "prev")) == (["a", "b"], None)
    second = client.get(_link(first, "next")).content.decode()
    assert _names(second) == ["c", "d"]
    last = client.get(_link(second, "next")).content.decode()
    assert (_names(last), _link(last, "next")) == (["e"], None)
    assert _names(client.get(_link(last, "prev")).content.decode()) == ["c", "d"]
    assert client.get("/validation-sets/", {"cursor": "nonsense"}).status_code == 404
