"""The new-set form: a refusal comes back (400) with every value kept and the reason beside
the field at fault; nothing is created."""

import pytest
from django.test import Client

from portal.validation.models import ValidationSet
from portal.validation.services import validation_set_create
from tests.portal import factories as f

pytestmark = pytest.mark.django_db

FORM = {
    "name": "spring",
    "sites": ["north"],
    "statuses": ["confirmed"],
    "sex": "F",
    "min_age_days": "900",
    "max_age_days": "400",
    "uploaded_after": "2026-01-01",
    "description": "girls",
    "blind_only": "on",
}


@pytest.fixture
def lead_client() -> Client:
    lead = f.user("lena", "lead", f.site("north"))
    client = Client()
    client.force_login(lead)
    return client


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({}, "max_age_days", "the minimum age is above the maximum"),
        ({"name": "", "max_age_days": ""}, "name", "give the set a name"),
        ({"name": "a b", "max_age_days": ""}, "name", "no spaces"),
        ({"sites": [], "max_age_days": ""}, "sites", "at least one site"),
        ({"min_age_days": "1.5", "max_age_days": ""}, "min_age_days", "whole number"),
        ({"uploaded_after": "2026-13-01", "max_age_days": ""}, "uploaded_after", "not a date"),
        ({"age_group": "1-3", "max_age_days": ""}, "age_group", "not both"),
    ],
)
def test_a_refused_form_keeps_its_values_and_names_the_field(lead_client, change, field, reason):
    form = {**FORM, **change}
    response = lead_client.post("/validation-sets/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert f'<p class="field-error" id="error-{field}">' in html
    assert reason in html.partition(f'id="error-{field}">')[2].partition("</p>")[0]
    assert 'id="form-errors"' in html
    assert html.count('class="field-error"') == 1
    assert 'value="north" checked' in html or not form["sites"]
    assert 'value="confirmed" checked' in html
    assert "<option selected>F</option>" in html
    assert f'value="{form["min_age_days"]}"' in html
    assert ">girls</textarea>" in html
    assert 'name="blind_only" checked' in html
    assert not ValidationSet.objects.exists()


def test_a_name_taken_is_an_error_on_the_name(lead_client):
    north = f.site("south")
    validation_set_create(name="spring", sites=[north])
    response = lead_client.post("/validation-sets/", {**FORM, "max_age_days": ""})
    assert response.status_code == 400
    assert "validation set &#x27;spring&#x27; exists" in response.content.decode()


def test_an_accepted_form_opens_the_new_set(lead_client):
    response = lead_client.post("/validation-sets/", {**FORM, "max_age_days": "1200"})
    assert response.status_code == 302
    assert response["Location"] == "/validation-sets/spring/"
    assert ValidationSet.objects.get().definition["max_age_days"] == 1200
