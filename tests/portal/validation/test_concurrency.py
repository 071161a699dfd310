"""Two freezes of one set at the same moment (a double click), each in its own thread and
database connection: one new version, which both answers name."""

import pytest
from rest_framework.test import APIClient

from portal.validation import services
from portal.validation.models import ValidationItem, ValidationSetVersion
from tests.conftest import at_once
from tests.portal import factories as f
from tests.portal.validation.test_sets import decide

pytestmark = pytest.mark.django_db(transaction=True)


def freeze(user, name: str):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(f"/api/validation-sets/{name}/freeze/")


def test_two_freezes_at_once_make_one_version_and_both_answer_it(site):
    lead = f.user("lena", "lead", site)
    for age in (1000, 2000, 3000):
        decide(f.image(site, age_days=age), lead, "confirm")
    services.validation_set_create(name="s", sites=[site], user=lead)

    first, second = at_once(lambda: freeze(lead, "s"), lambda: freeze(lead, "s"))

    assert (first.status_code, second.status_code) == (201, 201), (first.data, second.data)
    assert first.json()["version"] == second.json()["version"] == 1
    assert ValidationSetVersion.objects.count() == 1
    assert ValidationItem.objects.count() == 3


def test_a_freeze_after_a_change_at_the_same_moment_as_another_still_makes_one_version(site):
    lead = f.user("lena", "lead", site)
    decide(f.image(site, age_days=1000), lead, "confirm")
    chosen = services.validation_set_create(name="s", sites=[site], user=lead)
    services.validation_set_freeze(validation_set=chosen, user=lead)
    decide(f.image(site, age_days=2000), lead, "confirm")  # the set selects one more image

    first, second = at_once(lambda: freeze(lead, "s"), lambda: freeze(lead, "s"))

    assert first.json()["version"] == second.json()["version"] == 2
    assert list(ValidationSetVersion.objects.values_list("number", "item_count")) == [
        (2, 2),
        (1, 1),
    ]
