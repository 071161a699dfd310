"""Every numeric query filter, on the pages and the API alike, fuzzed with hostile values:
never a 500; a 400 that names the parameter wherever the value is not one the filter takes
(non-finite, out of range, malformed, other scripts' digits, surrounding space)."""

import pytest
from rest_framework.test import APIClient

from portal.validation.models import ValidationSet
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

pytestmark = pytest.mark.django_db

HOSTILE = ["inf", "-inf", "nan", "1e309", "-1", "99999", "", "1-", "3-1", "٣-٤", "0x1", " 1-3"]

# (method, url with {} for the value, parameter, the hostile values the filter takes):
# a blank page filter means "any"; the API refuses blank numbers; 99999 is a fine id or
# page size (the page size is capped) or version number (no such version: 404), but no age
# in days or years.
PAGES = [
    ("get", "/review/?age_group={}", "age_group", {""}),
    ("post", "/review/next/?age_group={}", "age_group", {""}),
    ("get", "/images/{image}/?queue=1&age_group={}", "age_group", {""}),
    ("get", "/images/?min_age_days={}", "min_age_days", {""}),
    ("get", "/images/?age_group={}", "age_group", {""}),
    ("get", "/images/?max_age_days={}", "max_age_days", {""}),
    ("get", "/images/?limit={}", "limit", {"", "99999"}),
    ("get", "/audit/?image={}", "image", {"", "99999"}),
    ("get", "/validation-sets/ns/?from={}&to=1", "from", {"", "99999"}),
]
API = [
    ("get", "/api/review/queue/?age_group={}", "age_group", {""}),
    ("post", "/api/review/queue/next/?age_group={}", "age_group", {""}),
    ("get", "/api/images/?min_age_days={}", "min_age_days", set()),
    ("get", "/api/images/?age_group={}", "age_group", {""}),
    ("get", "/api/images/?max_age_days={}", "max_age_days", set()),
    ("get", "/api/images/?limit={}", "limit", {"99999"}),
    ("get", "/api/audit/?image={}", "image", {"99999"}),
    ("get", "/api/jobs/?upload={}", "upload", {"99999"}),
    ("get", "/api/validation-sets/ns/diff/?from={}&to=1", "from", {"99999"}),
]


@pytest.fixture
def world():
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    f.model_version("m1")
    image = f.image(north, age_days=1000)
    image.status, image.curated_age_days = "confirmed", 1000
    image.save()
    validation_set_freeze(
        validation_set=validation_set_create(name="ns", sites=[north], user=lead), user=lead
    )
    return {"lead": lead, "image": image}


def _messages(page) -> list[str]:
    """The error messages a form's redirect shows (the form itself names every field)."""
    return [str(m) for m in page.context["messages"]]


def _check(response, parameter: str, valid: bool, value: str) -> None:
    where = f"{response.request['PATH_INFO']}?{response.request['QUERY_STRING']}"
    assert response.status_code != 500, where
    if valid:
        # a version number that names no version is not found; anything else answers
        assert response.status_code in (200, 204, 302, 404), where
    else:
        assert response.status_code == 400, (where, response.status_code)
        text = response.content.decode()
        assert parameter in text, (where, text[:300])


@pytest.mark.parametrize(("method", "url", "parameter", "valid"), PAGES)
def test_pages_refuse_hostile_numbers_with_a_400_page_naming_the_parameter(
    client, world, method, url, parameter, valid
):
    client.force_login(world["lead"])
    for value in HOSTILE:
        response = getattr(client, method)(url.format(value, image=world["image"].pk))
        _check(response, parameter, value in valid, value)
        if response.status_code == 400:
            assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(("method", "url", "parameter", "valid"), API)
def test_the_api_refuses_hostile_numbers_with_a_400_naming_the_parameter(
    world, method, url, parameter, valid
):
    api = APIClient()
    api.force_authenticate(world["lead"])
    for value in HOSTILE:
        response = getattr(api, method)(url.format(value))
        _check(response, parameter, value in valid, value)


def test_report_age_groups_refuse_hostile_bounds_on_the_api_and_the_page(client, world):
    api = APIClient()
    api.force_authenticate(world["lead"])
    client.force_login(world["lead"])
    hostile = [v for v in HOSTILE if v] + ["0,inf", "0,nan", "0,1e309", "0,19", "0,3,1", "0,,1"]
    for value in hostile:
        body = {"validation_set": "ns", "model": "m1", "age_groups": value}
        answer = api.post("/api/reports/", body, format="json")
        assert answer.status_code == 400, (value, answer.status_code)
        assert "age_groups" in answer.json()["detail"]
        page = client.post("/reports/new/", body, follow=True)
        assert page.status_code == 200
        assert any("age_groups" in m for m in _messages(page)), value
    assert (
        api.post("/api/reports/", {**body, "age_groups": "0,1,18"}, format="json").status_code
        == 202
    )


def test_set_age_bounds_refuse_hostile_values_on_the_api_and_the_page(client, world):
    api = APIClient()
    api.force_authenticate(world["lead"])
    client.force_login(world["lead"])
    for n, (field, value) in enumerate(
        [("min_age_days", "99999"), ("max_age_days", "-1"), ("max_age_days", "inf")]
        + [("age_group", v) for v in HOSTILE if v]
    ):
        body = {"name": f"s{n}", "sites": ["north"], field: value}
        answer = api.post("/api/validation-sets/", body, format="json")
        assert answer.status_code == 400, (field, value, answer.status_code)
        assert field in answer.content.decode()
        page = client.post("/validation-sets/", body)
        assert page.status_code == 400
        assert f'id="error-{field}"' in page.content.decode(), (field, value)
    assert list(ValidationSet.objects.values_list("name", flat=True)) == ["ns"]
