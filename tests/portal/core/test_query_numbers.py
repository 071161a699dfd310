"""Whole numbers in query strings: Unicode digits that `int` refuses and numbers past 64 bits
(which SQLite cannot bind) are a 400 naming the parameter, never a 500 or a broken stream."""

import pytest
from rest_framework.test import APIClient

from portal.core.numbers import MAX_WHOLE, finite_number, whole_number

pytestmark = pytest.mark.django_db

PAST_64_BITS = str(MAX_WHOLE + 1)


def test_whole_number_reads_ascii_digits_up_to_64_bits_only():
    assert [whole_number(t) for t in ["0", "42", str(MAX_WHOLE)]] == [0, 42, MAX_WHOLE]
    assert [whole_number(t) for t in [None, "", "²", "٣", "-1", "1.0", PAST_64_BITS]] == [None] * 7
    assert whole_number("1" * 5000) is None  # int() would refuse it past 4,300 digits


def test_finite_number_reads_plain_ascii_decimals_within_bounds_only():
    read = [finite_number(t, low=0, high=18) for t in ["0", "1", "1.5", "18", "07"]]
    assert read == [0, 1, 1.5, 18, 7]
    hostile = [None, "", "inf", "-inf", "nan", "1e309", "1e1", "-1", "18.5", "٣", " 1", "1 "]
    hostile += ["0x1", "1_0", "+1", ".5", "1.", "1" * 400]
    assert [finite_number(t, low=0, high=18) for t in hostile] == [None] * len(hostile)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"/api/audit/?image={PAST_64_BITS}", "image"),
        (f"/api/audit/export/?image={PAST_64_BITS}", "image"),
        ("/api/audit/?image=²", "image"),
        ("/api/jobs/?upload=²", "upload"),
        (f"/api/jobs/?upload={PAST_64_BITS}", "upload"),
        ("/api/images/?limit=²", "limit"),
        ("/api/images/?min_age_days=²", "detail"),
        (f"/api/images/?max_age_days={PAST_64_BITS}", "detail"),
        ("/api/validation-sets/ns/diff/?from=²&to=1", "detail"),
    ],
)
def test_an_unreadable_or_too_large_number_is_a_400_naming_it(admin_user, url, named):
    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.get(url)
    assert response.status_code == 400
    assert named in response.json()


@pytest.mark.parametrize(
    ("url", "named"), [("/images/?limit=²", "limit"), (f"/audit/?image={PAST_64_BITS}", "image")]
)
def test_pages_answer_a_400_page_naming_an_unreadable_or_too_large_number(
    admin_user, client, url, named
):
    client.force_login(admin_user)
    response = client.get(url)
    assert response.status_code == 400
    assert named in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/audit/?action=%00", "/api/images/?site=a%00b", "/images/?x%00=1"]
)
def test_a_nul_character_in_the_query_string_answers_400_on_every_database(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
