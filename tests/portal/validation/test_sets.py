"""Validation sets: what a definition selects, frozen versions that never change, diffs, the
command line, and who may see and change them."""

import datetime as dt

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client
from rest_framework.test import APIClient

from portal.accounts.services import membership_grant
from portal.core.models import AppendOnlyError
from portal.ingest.models import Image
from portal.review.services import review_submit
from portal.validation import services
from portal.validation.models import ValidationItem, ValidationSetVersion
from tests.conftest import manage
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def decide(image: Image, user, decision: str, age_days: int | None = None, reason: str = ""):
    image.refresh_from_db()
    review_submit(
        image=image,
        reviewer=user,
        decision=decision,
        age_days=age_days,
        reason=reason,
        comment="",
        expected_revision=image.revision,
    )
    image.refresh_from_db()
    return image


@pytest.fixture
def north():
    return f.site("north")


@pytest.fixture
def world(north):
    lead = f.user("lena", "lead", north)
    images = {
        "confirmed": decide(f.image(north, age_days=1000, sex="F"), lead, "confirm"),
        "corrected": decide(f.image(north, age_days=2000, sex="M"), lead, "correct", 2100),
        "excluded": decide(f.image(north, age_days=3000), lead, "exclude", reason="adult"),
        "unreviewed": f.image(north, age_days=4000),
    }
    return {"lead": lead, "site": north, **images}


def test_a_set_holds_settled_ages_only_and_applies_its_filters(world):
    lead, north = world["lead"], world["site"]
    everyone = services.validation_set_create(name="all", sites=[north], user=lead)
    girls = services.validation_set_create(
        name="girls", sites=[north], user=lead, sex="F", max_age_days=1500
    )
    later = services.validation_set_create(
        name="later", sites=[north], user=lead, uploaded_after=dt.date(2999, 1, 1)
    )

    version = services.validation_set_freeze(validation_set=everyone, user=lead)
    items = {i.image_id: i for i in version.items.all()}
    assert set(items) == {world["confirmed"].pk, world["corrected"].pk}
    assert items[world["corrected"].pk].curated_age_days == 2100
    assert items[world["confirmed"].pk].sha256 == world["confirmed"].sha256
    assert [i.pk for i in services.eligible_images(validation_set=girls)] == [world["confirmed"].pk]
    with pytest.raises(services.ValidationSetError, match="no image matches"):
        services.validation_set_freeze(validation_set=later, user=lead)


def test_an_adjudicated_exclusion_is_never_in_a_set():
    site = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", site), f.user("bob", "reviewer", site)
    lead = f.user("lena", "lead", site)
    kept, dropped = f.image(site), f.image(site)
    for image, verdict in ((kept, "confirm"), (dropped, "exclude")):
        decide(image, alice, "confirm")
        decide(image, bob, "exclude", reason="adult")  # disputed
        decide(image, lead, verdict, reason="adult")  # adjudicated
    chosen = services.validation_set_create(name="east", sites=[site], user=lead)
    version = services.validation_set_freeze(validation_set=chosen, user=lead)
    assert [i.image_id for i in version.items.all()] == [kept.pk]


def test_freezing_freezes_and_a_later_correction_makes_a_new_version(world):
    lead, north = world["lead"], world["site"]
    chosen = services.validation_set_create(name="north-2026", sites=[north], user=lead)
    v1 = services.validation_set_freeze(validation_set=chosen, user=lead)
    checksum, ages = v1.manifest_sha256, dict(v1.items.values_list("image_id", "curated_age_days"))
    assert services.validation_set_freeze(validation_set=chosen, user=lead) == v1  # no change

    decide(world["confirmed"], lead, "correct", 1200)
    decide(world["unreviewed"], lead, "confirm")
    decide(world["corrected"], lead, "exclude", reason="poor_quality")
    v2 = services.validation_set_freeze(validation_set=chosen, user=lead)

    v1 = ValidationSetVersion.objects.get(pk=v1.pk)
    assert v1.manifest_sha256 == checksum
    assert dict(v1.items.values_list("image_id", "curated_age_days")) == ages
    assert (v2.number, v2.item_count) == (2, 2)
    assert v2.manifest_sha256 != checksum
    diff = services.version_diff(old=v1, new=v2)
    assert diff["added"] == [{"image": world["unreviewed"].pk, "curated_age_days": 4000}]
    assert diff["removed"] == [{"image": world["corrected"].pk, "curated_age_days": 2100}]
    assert diff["reaged"] == [{"image": world["confirmed"].pk, "from_days": 1000, "to_days": 1200}]


def test_frozen_versions_and_items_cannot_be_altered(world):
    chosen = services.validation_set_create(name="s", sites=[world["site"]], user=world["lead"])
    version = services.validation_set_freeze(validation_set=chosen, user=world["lead"])
    item = version.items.first()

    with pytest.raises(AppendOnlyError):
        version.save()
    with pytest.raises(AppendOnlyError):
        ValidationItem.objects.filter(pk=item.pk).update(curated_age_days=1)
    with pytest.raises(AppendOnlyError):
        item.delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE validation_validationitem SET curated_age_days = 1")
    assert ValidationItem.objects.get(pk=item.pk).curated_age_days == item.curated_age_days


def test_only_leads_of_every_site_define_and_freeze_and_others_do_not_see(world):
    north, south = world["site"], f.site("south")
    reviewer = f.user("rita", "reviewer", north)
    outsider = f.user("olga", "lead", south)
    f.user("lena-south", "reviewer", south)

    def client(user) -> APIClient:
        c = APIClient()
        c.force_authenticate(user)
        return c

    body = {"name": "both", "sites": ["north", "south"]}
    assert (
        client(world["lead"]).post("/api/validation-sets/", body, format="json").status_code == 404
    )
    lead = world["lead"]
    membership_grant(actor=None, user=lead, site=south, role="reviewer")
    refused = client(lead).post("/api/validation-sets/", body, format="json")
    assert refused.status_code == 403
    made = client(lead).post(
        "/api/validation-sets/", {"name": "n", "sites": ["north"]}, format="json"
    )
    assert made.status_code == 201
    assert client(reviewer).post("/api/validation-sets/n/freeze/").status_code == 403
    frozen = client(lead).post("/api/validation-sets/n/freeze/")
    assert frozen.status_code == 201
    assert frozen.json()["items"] == 2
    assert client(reviewer).get("/api/validation-sets/n/versions/1/").status_code == 200
    assert client(outsider).get("/api/validation-sets/n/").status_code == 404
    assert client(outsider).get("/api/validation-sets/").json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_the_command_line_creates_freezes_lists_and_diffs(data_dir):
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    decide(f.image(north, age_days=700), lead, "confirm")
    girl = decide(f.image(north, age_days=900, sex="F"), lead, "confirm")

    created = manage(
        "validation_set",
        "create",
        "n26",
        "--site",
        "north",
        "--status",
        "confirmed",
        data_dir=data_dir,
    )
    assert created.returncode == 0, created.stderr
    assert "2 images match" in created.stdout
    assert manage("validation_set", "freeze", "n26", data_dir=data_dir).returncode == 0
    decide(girl, lead, "correct", 950)
    created_again = manage("validation_set", "create", "n26", "--site", "north", data_dir=data_dir)
    assert created_again.returncode == 1
    assert "exists" in created_again.stderr
    # The correction leaves the confirmed-only set: v2 has one item.
    second = manage("validation_set", "freeze", "n26", data_dir=data_dir)
    assert "n26 v2: 1 items" in second.stdout
    listed = manage("validation_set", "list", data_dir=data_dir)
    assert "n26  sites north  v2 (1), v1 (2)" in listed.stdout
    diff = manage("validation_set", "diff", "n26", "1", "2", data_dir=data_dir)
    assert f'"image": {girl.pk}' in diff.stdout
    assert manage("validation_set", "freeze", "nope", data_dir=data_dir).returncode == 2
    unknown = manage("validation_set", "create", "x", "--site", "nowhere", data_dir=data_dir)
    assert unknown.returncode == 2
    assert manage("validation_set", "diff", "n26", "1", "9", data_dir=data_dir).returncode == 2


def test_the_admin_shows_frozen_versions_but_cannot_change_them(world, admin_user):
    chosen = services.validation_set_create(name="s", sites=[world["site"]], user=world["lead"])
    version = services.validation_set_freeze(validation_set=chosen, user=world["lead"])
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/validation/validationsetversion/{version.pk}/change/"
    assert client.get(url).status_code == 200  # shown, read-only
    client.post(url, {"number": 9, "item_count": 0})
    client.post(f"/admin/validation/validationsetversion/{version.pk}/delete/", {"post": "yes"})
    version.refresh_from_db()
    assert (version.number, version.item_count) == (1, 2)
