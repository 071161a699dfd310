"""The audit log's names and visibility: one list of action names (code and docs), events
about sets once per site of the set, and who sees site-less events."""

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from portal.accounts.audit import AuditAction
from portal.accounts.models import AuditEvent
from portal.accounts.services import audit_record, user_create
from portal.predictions.services import model_version_activate
from portal.review.services import review_submit
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

ROOT = Path(__file__).resolve().parents[3]


def test_no_caller_spells_an_action_name_outside_audit_action():
    literal = re.compile(r"""action\s*=\s*f?["'][a-z_]+\.""")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "portal").rglob("*.py"))
        if path.name != "audit.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if literal.search(line)
    ]
    assert not offenders, f"use AuditAction members: {offenders}"


def test_the_docs_list_every_action():
    docs = (ROOT / "docs" / "review.md").read_text()  # "Audit log"
    missing = [a.value for a in AuditAction if f"`{a.value}`" not in docs]
    assert not missing, f"the audit event list of docs/review.md lacks {missing}"


@pytest.mark.django_db
def test_an_action_name_not_in_audit_action_is_refused():
    with pytest.raises(ValueError, match="unknown audit action 'image.peek'"):
        audit_record(actor=None, action="image.peek")
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_set_events_land_once_on_each_site_of_the_set_and_each_lead_sees_them():
    north, south = f.site("north"), f.site("south")
    both = f.user("lena", "lead", north, south)
    only_south = f.user("sam", "lead", south)
    image = f.image(south, age_days=2000)
    review_submit(
        image=image,
        reviewer=both,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    chosen = validation_set_create(name="joint", sites=[north, south], user=both)
    validation_set_freeze(validation_set=chosen, user=both)

    events = AuditEvent.objects.filter(action__startswith="validation_set.")
    assert sorted((e.action, e.site.slug) for e in events) == [
        ("validation_set.create", "north"),
        ("validation_set.create", "south"),
        ("validation_set.freeze", "north"),
        ("validation_set.freeze", "south"),
    ]
    freeze = events.filter(action="validation_set.freeze").first()
    assert (freeze.before, freeze.after["version"], freeze.after["items"]) == (None, 1, 1)
    client = APIClient()
    client.force_authenticate(only_south)
    seen = client.get("/api/audit/?action=validation_set.").json()["results"]
    assert sorted((e["action"], e["site"], e["target"]) for e in seen) == [
        ("validation_set.create", "south", "joint"),
        ("validation_set.freeze", "south", "joint:1"),
    ]


@pytest.mark.django_db
def test_every_lead_sees_model_activation_and_only_superusers_see_other_global_events():
    north = f.site("north")
    lead, reviewer = f.user("lena", "lead", north), f.user("rita", "reviewer", north)
    root = get_user_model().objects.create_superuser("root", password=f.PASSWORD)
    f.model_version("m1", active=True)
    m2 = f.model_version("m2", active=False)
    model_version_activate(version=m2, user=root)
    model_version_activate(version=m2, user=root)  # already active: nothing changes
    user_create(actor=root, username="newcomer", password="a-long-password-42")

    activation = AuditEvent.objects.get(action="model.activate")
    assert (activation.site, activation.before, activation.after["active"]) == (
        None,
        {"active": "m1"},
        "m2",
    )

    def actions(user) -> list[str]:
        client = APIClient()
        client.force_authenticate(user)
        response = client.get("/api/audit/")
        return (
            [e["action"] for e in response.json()["results"]] if response.status_code == 200 else []
        )

    assert "model.activate" in actions(lead)
    assert "user.create" not in actions(lead)
    assert {"model.activate", "user.create"} <= set(actions(root))
    assert actions(reviewer) == []  # the log is for leads (403)
