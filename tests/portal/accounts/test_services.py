"""The accounts services every page, command and the admin go through: user names, passwords,
a site's last lead, and what each change writes to the audit log."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command

from portal.accounts import services
from portal.accounts.models import AuditEvent, Membership, Role
from portal.review.services import review_submit
from tests.conftest import at_once
from tests.portal import factories as f

pytestmark = pytest.mark.django_db
GOOD = "quiet-harbour-71"


def _events(**filters) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(**filters)
        .order_by("id")
        .values_list("action", "site__slug", "target", "before", "after")
    )


def _roles(username: str) -> dict[str, str]:
    return dict(
        Membership.objects.filter(user__username=username).values_list("site__slug", "role")
    )


# Names


def test_names_are_nfkc_normalised_and_stripped_of_surrounding_whitespace():
    user, _ = services.user_create(actor=None, username="  ｒｉｔａ\u3000", password=GOOD)
    assert user.get_username() == "rita"
    assert _events() == [
        (
            "user.create",
            None,
            "rita",
            None,
            {"is_staff": False, "is_superuser": False, "usable_password": True},
        )
    ]


@pytest.mark.parametrize(
    ("name", "scripts"),
    [
        ("\u0430dmin", "Cyrillic, Latin"),  # Cyrillic a, then Latin
        ("rit\u03b1", "Greek, Latin"),  # Greek alpha
        ("\u0430\u0431c", "Cyrillic, Latin"),
    ],
)
def test_names_mixing_scripts_are_refused_and_nothing_is_created(name, scripts):
    with pytest.raises(services.AccountsError, match=rf"mixes scripts \({scripts}\)") as refused:
        services.user_create(actor=None, username=name, password=GOOD)
    assert refused.value.field == "username"
    assert not get_user_model().objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "name", ["иван", "josé.garcía", "山田たろう", "スーパー", "김민준", "a.b-c_d@e+1"]
)
def test_names_in_one_script_are_accepted_as_they_are(name):
    assert services.username_normalise(name) == name


@pytest.mark.parametrize("name", ["ri ta", "ri\u200bta", "rita!", "", "   ", "x" * 151])
def test_names_with_inner_spaces_invisible_or_other_characters_are_refused(name):
    with pytest.raises(services.AccountsError, match="^username: ") as refused:
        services.user_create(actor=None, username=name, password=GOOD)
    assert refused.value.field == "username"


def test_a_name_differing_only_in_case_from_another_users_is_refused():
    f.user("rita")
    with pytest.raises(services.AccountsError, match="user 'rita' exists"):
        services.user_create(actor=None, username="Rita", password=GOOD)


def test_user_add_finds_the_existing_user_under_the_normalised_name():
    north = f.site("north")
    rita = f.user("rita")
    user, generated = services.user_add(
        actor=None, username=" ｒｉｔａ ", role=Role.REVIEWER, sites=[north]
    )
    assert (user, generated) == (rita, None)
    assert _roles("rita") == {"north": "reviewer"}


def test_a_rename_follows_the_name_rules_and_is_one_change_event():
    rita = f.user("rita")
    f.user("sam")
    with pytest.raises(services.AccountsError, match="mixes scripts"):
        services.user_update(actor=None, user=rita, changes={"username": "rit\u0430"})
    with pytest.raises(services.AccountsError, match="user 'sam' exists"):
        services.user_update(actor=None, user=rita, changes={"username": "SAM"})
    assert services.user_update(actor=None, user=rita, changes={"username": " rita2 "})
    rita.refresh_from_db()
    assert rita.get_username() == "rita2"
    assert _events() == [
        ("user.change", None, "rita2", {"username": "rita"}, {"username": "rita2"})
    ]


# Passwords


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("1", "too short"),
        ("password", "too common"),
        ("83920174615", "entirely numeric"),
        ("rita-walker", "too similar to the username"),
    ],
)
def test_every_password_a_service_sets_passes_the_validators(password, reason):
    north = f.site("north")
    with pytest.raises(services.AccountsError, match=reason) as refused:
        services.user_create(actor=None, username="rita-walker", password=password)
    assert refused.value.field == "password"
    with pytest.raises(services.AccountsError, match=reason):
        services.user_add(
            actor=None, username="rita-walker", role=Role.REVIEWER, sites=[north], password=password
        )
    assert not get_user_model().objects.exists()
    sam = f.user("rita-walker")
    with pytest.raises(services.AccountsError, match=reason):
        services.user_set_password(actor=None, user=sam, password=password)
    sam.refresh_from_db()
    assert sam.check_password(f.PASSWORD)
    assert not AuditEvent.objects.exists()


def test_generated_passwords_pass_the_validators(data_dir):
    user, generated = services.user_create(actor=None, username="rita")
    validate_password(generated, user)
    assert user.check_password(generated)

    call_command("ensure_admin")
    admin = get_user_model().objects.get(username="admin")
    password = (data_dir / "admin-password.txt").read_text().strip()
    validate_password(password, admin)
    assert admin.check_password(password)
    assert admin.is_superuser
    assert admin.is_staff
    assert _events(target="admin")[0][:3] == ("user.create", None, "admin")


def test_a_password_can_be_disabled_on_the_record():
    rita = f.user("rita")
    services.user_set_password(actor=None, user=rita, password=None)
    rita.refresh_from_db()
    assert not rita.has_usable_password()
    assert _events() == [("user.password", None, "rita", None, {"usable_password": False})]


# A site keeps at least one lead


def test_a_lead_cannot_revoke_themselves_as_the_last_lead_of_a_site():
    north = f.site("north")
    lena = f.user("lena", Role.LEAD, north)
    with pytest.raises(services.AccountsError, match="north must keep a lead: lena is its last"):
        services.membership_revoke(actor=lena, membership=lena.memberships.get())
    assert _roles("lena") == {"north": "lead"}
    assert not AuditEvent.objects.filter(action="role.revoke").exists()

    f.user("max", Role.LEAD, north)
    services.membership_revoke(actor=lena, membership=lena.memberships.get())
    assert _roles("lena") == {}


def test_the_last_lead_cannot_be_downgraded_and_another_site_does_not_count():
    north, south = f.site("north"), f.site("south")
    lena = f.user("lena", Role.LEAD, north)
    f.user("sam", Role.LEAD, south)
    with pytest.raises(services.AccountsError, match="north must keep a lead"):
        services.membership_grant(actor=None, user=lena, site=north, role=Role.REVIEWER)
    assert _roles("lena") == {"north": "lead"}


def test_an_inactive_lead_does_not_count_as_the_sites_lead():
    north = f.site("north")
    lena = f.user("lena", Role.LEAD, north)
    max_ = f.user("max", Role.LEAD, north)
    services.user_update(actor=None, user=max_, changes={"is_active": False})
    with pytest.raises(services.AccountsError, match="north must keep a lead: lena"):
        services.membership_revoke(actor=None, membership=lena.memberships.get())
    # A site whose leads are all inactive already may lose them.
    services.membership_revoke(actor=None, membership=max_.memberships.get())


def test_the_last_active_lead_cannot_be_deactivated():
    north = f.site("north")
    lena = f.user("lena", Role.LEAD, north)
    with pytest.raises(services.AccountsError, match="north must keep a lead"):
        services.user_update(actor=None, user=lena, changes={"is_active": False, "is_staff": True})
    lena.refresh_from_db()
    assert lena.is_active
    assert not lena.is_staff
    assert not AuditEvent.objects.filter(action="user.change").exists()


def test_deleting_a_user_revokes_each_role_on_the_record_then_deletes():
    north, south = f.site("north"), f.site("south")
    f.user("lena", Role.LEAD, north, south)
    rita = f.user("rita", Role.REVIEWER, north, south)
    first = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    services.user_delete(actor=None, user=rita)
    assert not get_user_model().objects.filter(username="rita").exists()
    assert _events(id__gt=first) == [
        ("role.revoke", "north", "rita", {"role": "reviewer"}, None),
        ("role.revoke", "south", "rita", {"role": "reviewer"}, None),
        (
            "user.delete",
            None,
            "rita",
            {
                "is_active": True,
                "is_staff": False,
                "is_superuser": False,
                "roles": {"north": "reviewer", "south": "reviewer"},
            },
            None,
        ),
    ]


def test_the_last_lead_of_a_site_cannot_be_deleted():
    north, south = f.site("north"), f.site("south")
    lena = f.user("lena", Role.LEAD, north, south)
    f.user("max", Role.LEAD, south)
    with pytest.raises(services.AccountsError) as refused:
        services.user_delete(actor=None, user=lena)
    assert str(refused.value) == (
        "north must keep a lead: lena is its last lead (make someone else lead of north first)"
    )
    assert _roles("lena") == {"north": "lead", "south": "lead"}
    assert not AuditEvent.objects.filter(action__in=["role.revoke", "user.delete"]).exists()


def test_a_user_whose_decisions_keep_their_name_is_not_deleted():
    north = f.site("north")
    f.user("lena", Role.LEAD, north)
    rita = f.user("rita", Role.REVIEWER, north)
    image = f.image(north)
    review_submit(
        image=image,
        reviewer=rita,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    with pytest.raises(services.AccountsError, match="rita cannot be deleted: .*deactivate"):
        services.user_delete(actor=None, user=rita)
    assert _roles("rita") == {"north": "reviewer"}
    assert not AuditEvent.objects.filter(action__in=["role.revoke", "user.delete"]).exists()


@pytest.mark.django_db(transaction=True)
def test_two_leads_revoking_each_other_at_once_leave_one_lead():
    north = f.site("north")
    lena, max_ = f.user("lena", Role.LEAD, north), f.user("max", Role.LEAD, north)

    def revoke(actor, target) -> str:
        try:
            services.membership_revoke(actor=actor, membership=target.memberships.get())
        except services.AccountsError:
            return "refused"
        return "revoked"

    outcomes = at_once(lambda: revoke(lena, max_), lambda: revoke(max_, lena))
    assert sorted(outcomes) == ["refused", "revoked"]
    assert Membership.objects.filter(site=north, role=Role.LEAD).count() == 1


# Changes on the record


def test_a_membership_edit_is_a_revoke_of_the_old_and_a_grant_of_the_new():
    north, south = f.site("north"), f.site("south")
    f.user("lena", Role.LEAD, north, south)
    rita = f.user("rita", Role.REVIEWER, north)
    first = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    services.membership_change(
        actor=None, membership=rita.memberships.get(), user=rita, site=south, role=Role.UPLOADER
    )
    assert _roles("rita") == {"south": "uploader"}
    assert _events(id__gt=first) == [
        ("role.revoke", "north", "rita", {"role": "reviewer"}, None),
        ("role.grant", "south", "rita", None, {"role": "uploader"}),
    ]
    unchanged = rita.memberships.get()
    services.membership_change(
        actor=None, membership=unchanged, user=rita, site=south, role=Role.UPLOADER
    )
    assert AuditEvent.objects.filter(id__gt=first).count() == 2


def test_a_user_change_is_one_event_with_before_and_after_of_what_differs():
    rita = f.user("rita")
    staff = Group.objects.create(name="model-managers")
    changed = services.user_update(
        actor=None,
        user=rita,
        changes={
            "is_staff": True,
            "is_superuser": True,
            "is_active": True,
            "email": "",
            "groups": [staff],
        },
    )
    assert changed
    assert _events() == [
        (
            "user.change",
            None,
            "rita",
            {"is_staff": False, "is_superuser": False, "groups": []},
            {"is_staff": True, "is_superuser": True, "groups": ["model-managers"]},
        )
    ]
    rita.refresh_from_db()
    assert rita.is_staff
    assert rita.is_superuser
    assert list(rita.groups.all()) == [staff]
    assert not services.user_update(actor=None, user=rita, changes={"is_staff": True})
    assert AuditEvent.objects.count() == 1
    with pytest.raises(services.AccountsError, match="cannot change password"):
        services.user_update(actor=None, user=rita, changes={"password": "x"})
