"""Refusals and failures of pages answer a page in the portal's frame (its menu, its style)
that says what to do, with DEBUG off as in production; the API keeps its JSON answers."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from portal.ingest import selectors
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def production(settings) -> None:
    settings.DEBUG = False


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _in_frame(html: str) -> bool:
    return '<nav aria-label="Main menu">' in html and "portal.css" in html


def test_a_reviewer_asking_for_the_upload_page_gets_the_403_page_with_the_reason():
    reviewer = f.user("rita", "reviewer", f.site("north"))
    response = _client(reviewer).get("/uploads/new/")
    html = response.content.decode()
    assert response.status_code == 403
    assert _in_frame(html)
    assert "<h1>You cannot do this here</h1>" in html
    assert "uploading needs the uploader or lead role on a site" in html
    assert "ask a lead of the site" in html


def test_a_path_that_matches_nothing_gets_the_404_page_without_the_url_patterns():
    reader = f.user("rita", "reviewer", f.site("north"))
    response = _client(reader).get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert _in_frame(html)
    assert "<h1>Not found</h1>" in html
    assert "admin/" not in html.partition("<main>")[2]  # the resolver's tried patterns


def test_a_bad_cursor_gets_the_404_page_with_a_link_without_the_query():
    reader = f.user("rita", "reviewer", f.site("north"))
    response = _client(reader).get("/images/", {"cursor": "nonsense", "sex": "F"})
    html = response.content.decode()
    assert response.status_code == 404
    assert "invalid cursor" in html
    assert '<a href="/images/" id="without-query">' in html


def test_another_sites_image_is_not_found_like_one_that_never_was():
    f.site("south")
    reader = f.user("rita", "reviewer", f.site("north"))
    other = f.image(f.site("west"))
    missing = _client(reader).get(f"/images/{other.pk}/")
    never = _client(reader).get("/images/999999/")
    assert missing.status_code == never.status_code == 404
    assert "<h1>Not found</h1>" in missing.content.decode()


def test_a_page_that_fails_gets_the_500_page_in_the_frame(admin_user, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("Jane Doe")

    monkeypatch.setattr(selectors, "site_list", fail)
    response = _client(admin_user).get("/uploads/new/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in html
    assert "portal.css" in html
    assert "Jane" not in html


def test_api_errors_stay_json():
    reviewer = f.user("rita", "reviewer", f.site("north"))
    api = APIClient()
    api.force_authenticate(reviewer)
    assert api.get("/api/no-such-thing/").json() == {"detail": "Not found."}
    refused = api.post("/api/sites/north/uploads/", {}, format="multipart")
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("role", "offered", "hidden"),
    [
        ("reviewer", ["Review queue"], ["New upload", "Audit", "Team"]),
        ("uploader", ["New upload"], ["Review queue", "Audit", "Team"]),
        ("lead", ["Review queue", "New upload", "Audit", "Team"], []),
    ],
)
def test_the_menu_offers_only_what_the_role_allows(role, offered, hidden):
    user = f.user("someone", role, f.site("north"))
    html = _client(user).get("/").content.decode()
    menu = html.partition('<nav aria-label="Main menu">')[2].partition("</nav>")[0]
    for label in offered:
        assert f">{label}</a>" in menu
    for label in hidden:
        assert f">{label}</a>" not in menu


def test_a_form_sent_without_its_csrf_token_gets_the_expired_form_page():
    lead = f.user("lena", "lead", f.site("north"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    response = client.post("/validation-sets/", {"name": "spring", "sites": ["north"]})
    html = response.content.decode()
    assert response.status_code == 403
    assert "<h1>This form has expired</h1>" in html
    assert "reload the page" in html
