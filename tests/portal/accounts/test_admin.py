"""The Django admin as a superuser uses it: real POSTs of the user page (with its roles inline),
the membership page, the password form and deletion. Each change goes through the accounts
services: the Membership rows and exactly the expected audit events."""

import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client

from portal.accounts.models import AuditEvent, Membership, Role
from tests.portal import factories as f

pytestmark = pytest.mark.django_db
USERS = "/admin/auth/user/"


@pytest.fixture
def admin_client(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def world():
    """Two sites with a lead each (lena leads both), and rita, a reviewer on north."""
    north, south = f.site("north"), f.site("south")
    lena = f.user("lena", Role.LEAD, north, south)
    rita = f.user("rita", Role.REVIEWER, north)
    return {"north": north, "south": south, "lena": lena, "rita": rita}


def _form_data(form: forms.BaseForm) -> dict:
    """What the browser posts back for a form as the page shows it."""
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value, key = form[name].value(), form.add_prefix(name)
        if isinstance(field, forms.BooleanField):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        else:
            data[key] = "" if value is None else str(value)
    return data


def _page_data(client: Client, url: str) -> dict:
    """The change page's form and every inline formset, as posted unchanged."""
    page = client.get(url)
    assert page.status_code == 200
    data = _form_data(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    return data


def _inline_index(data: dict, site) -> int:
    """The index of the inline row that holds `site`."""
    return next(
        int(key.split("-")[1])
        for key, value in data.items()
        if key.startswith("memberships-") and key.endswith("-site") and value == str(site.pk)
    )


def _new_events(since: int) -> list[tuple]:
    return list(
        AuditEvent.objects.filter(id__gt=since)
        .order_by("id")
        .values_list("action", "actor_name", "site__slug", "target", "before", "after")
    )


def _last_event() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _roles(user) -> dict[str, str]:
    return dict(Membership.objects.filter(user=user).values_list("site__slug", "role"))


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_editing_the_site_of_a_role_inline_revokes_the_old_and_grants_the_new(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/change/"
    data = _page_data(admin_client, url)
    data[f"memberships-{_inline_index(data, world['north'])}-site"] = str(world["south"].pk)
    since = _last_event()

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content[:2000]
    assert _roles(world["rita"]) == {"south": "reviewer"}
    assert _new_events(since) == [
        ("role.revoke", "lead", "north", "rita", {"role": "reviewer"}, None),
        ("role.grant", "lead", "south", "rita", None, {"role": "reviewer"}),
    ]


def test_adding_and_deleting_roles_inline_grant_and_revoke(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/change/"
    data = _page_data(admin_client, url)
    data[f"memberships-{_inline_index(data, world['north'])}-DELETE"] = "on"
    data["memberships-TOTAL_FORMS"] = "2"
    data.update({"memberships-1-site": str(world["south"].pk), "memberships-1-role": "uploader"})
    data.update({"memberships-1-id": "", "memberships-1-user": str(world["rita"].pk)})
    since = _last_event()

    assert admin_client.post(url, data).status_code == 302

    assert _roles(world["rita"]) == {"south": "uploader"}
    assert _new_events(since) == [
        ("role.revoke", "lead", "north", "rita", {"role": "reviewer"}, None),
        ("role.grant", "lead", "south", "rita", None, {"role": "uploader"}),
    ]


def test_saving_the_user_page_unchanged_writes_no_event(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/change/"
    since = _last_event()
    assert admin_client.post(url, _page_data(admin_client, url)).status_code == 302
    assert _new_events(since) == []
    assert _roles(world["rita"]) == {"north": "reviewer"}


def test_flag_changes_are_one_user_change_event_with_before_and_after(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/change/"
    data = _page_data(admin_client, url)
    data.update({"is_staff": "on", "is_superuser": "on"})
    since = _last_event()

    assert admin_client.post(url, data).status_code == 302

    rita = get_user_model().objects.get(pk=world["rita"].pk)
    assert rita.is_staff
    assert rita.is_superuser
    assert _new_events(since) == [
        (
            "user.change",
            "lead",
            None,
            "rita",
            {"is_staff": False, "is_superuser": False},
            {"is_staff": True, "is_superuser": True},
        )
    ]

    data = _page_data(admin_client, url)
    del data["is_active"]
    since = _last_event()
    assert admin_client.post(url, data).status_code == 302
    assert _new_events(since) == [
        ("user.change", "lead", None, "rita", {"is_active": True}, {"is_active": False})
    ]


def test_downgrading_the_last_lead_inline_changes_nothing_and_says_why(admin_client, world):
    url = f"{USERS}{world['lena'].pk}/change/"
    data = _page_data(admin_client, url)
    data[f"memberships-{_inline_index(data, world['north'])}-role"] = "reviewer"
    data["is_staff"] = "on"  # the whole save is undone, not only the role
    since = _last_event()

    response = admin_client.post(url, data)

    assert response.status_code == 302
    assert response["Location"] == url
    assert _messages(response) == [
        "Nothing was changed: north must keep a lead: lena is its last lead"
        " (make someone else lead of north first)"
    ]
    assert _roles(world["lena"]) == {"north": "lead", "south": "lead"}
    assert not get_user_model().objects.get(pk=world["lena"].pk).is_staff
    assert _new_events(since) == []


def test_a_rename_mixing_scripts_is_refused_on_the_form(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/change/"
    data = _page_data(admin_client, url)
    data["username"] = "rit\u0430"  # Cyrillic a
    since = _last_event()

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "mixes scripts (Cyrillic, Latin)" in str(response.context["adminform"].form.errors)
    assert get_user_model().objects.get(pk=world["rita"].pk).get_username() == "rita"
    assert _new_events(since) == []


def test_editing_a_membership_on_its_page_is_a_revoke_and_a_grant(admin_client, world):
    membership = world["rita"].memberships.get()
    url = f"/admin/accounts/membership/{membership.pk}/change/"
    data = _page_data(admin_client, url)
    data.update({"site": str(world["south"].pk), "role": "uploader"})
    since = _last_event()

    response = admin_client.post(url, data)

    assert response.status_code == 302
    assert _roles(world["rita"]) == {"south": "uploader"}
    assert _new_events(since) == [
        ("role.revoke", "lead", "north", "rita", {"role": "reviewer"}, None),
        ("role.grant", "lead", "south", "rita", None, {"role": "uploader"}),
    ]


def test_adding_and_deleting_a_membership_on_its_pages(admin_client, world):
    since = _last_event()
    response = admin_client.post(
        "/admin/accounts/membership/add/",
        {"user": str(world["rita"].pk), "site": str(world["south"].pk), "role": "uploader"},
    )
    assert response.status_code == 302
    added = Membership.objects.get(user=world["rita"], site=world["south"])
    assert _new_events(since) == [
        ("role.grant", "lead", "south", "rita", None, {"role": "uploader"})
    ]

    since = _last_event()
    url = f"/admin/accounts/membership/{added.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert _roles(world["rita"]) == {"north": "reviewer"}
    assert _new_events(since) == [
        ("role.revoke", "lead", "south", "rita", {"role": "uploader"}, None)
    ]


def test_the_last_leads_membership_cannot_be_deleted_on_its_page(admin_client, world):
    membership = world["lena"].memberships.get(site=world["north"])
    url = f"/admin/accounts/membership/{membership.pk}/delete/"
    since = _last_event()

    page = admin_client.get(url)
    assert "north must keep a lead: lena is its last lead" in page.content.decode()
    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 200  # the page that says why
    assert Membership.objects.filter(pk=membership.pk).exists()
    assert _new_events(since) == []


def test_a_password_set_in_the_admin_is_checked_and_on_the_record_once(admin_client, world):
    url = f"{USERS}{world['rita'].pk}/password/"
    since = _last_event()

    weak = admin_client.post(url, {"password1": "1", "password2": "1", "usable_password": "true"})
    assert weak.status_code == 200
    assert "too short" in str(weak.context["form"].errors)
    assert _new_events(since) == []

    response = admin_client.post(
        url, {"password1": "tidal-lantern-42", "password2": "tidal-lantern-42"}
    )

    assert response.status_code == 302
    assert get_user_model().objects.get(pk=world["rita"].pk).check_password("tidal-lantern-42")
    assert _new_events(since) == [
        ("user.password", "lead", None, "rita", None, {"usable_password": True})
    ]


def test_a_user_created_in_the_admin_with_a_role_is_on_the_record_name_and_password_checked(
    admin_client, world
):
    url = f"{USERS}add/"
    page = _page_data(admin_client, url)  # the roles inline, empty
    password = {"password1": "tidal-lantern-42", "password2": "tidal-lantern-42"}
    since = _last_event()
    refused = admin_client.post(url, {**page, **password, "username": "\u0430nna"})
    assert refused.status_code == 200
    assert "mixes scripts" in str(refused.context["adminform"].form.errors)

    role = {"memberships-TOTAL_FORMS": "1", "memberships-0-site": str(world["north"].pk)}
    role["memberships-0-role"] = "reviewer"
    response = admin_client.post(
        url, {**page, **password, **role, "username": " ａnna ", "usable_password": "true"}
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    anna = get_user_model().objects.get(username="anna")
    assert anna.check_password("tidal-lantern-42")
    assert response["Location"] == f"{USERS}{anna.pk}/change/"
    assert _new_events(since) == [
        (
            "user.create",
            "lead",
            None,
            "anna",
            None,
            {"is_staff": False, "is_superuser": False, "usable_password": True},
        ),
        ("role.grant", "lead", "north", "anna", None, {"role": "reviewer"}),
    ]


def test_deleting_a_user_revokes_each_role_on_the_record(admin_client, world):
    Membership.objects.filter(user=world["rita"]).delete()  # no event: set up two roles below
    f.user("rita-2", Role.REVIEWER, world["north"], world["south"])
    rita2 = get_user_model().objects.get(username="rita-2")
    since = _last_event()

    response = admin_client.post(f"{USERS}{rita2.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=rita2.pk).exists()
    assert [e[:4] for e in _new_events(since)] == [
        ("role.revoke", "lead", "north", "rita-2"),
        ("role.revoke", "lead", "south", "rita-2"),
        ("user.delete", "lead", None, "rita-2"),
    ]


def test_deleting_the_last_lead_is_refused_with_the_reason(admin_client, world):
    url = f"{USERS}{world['lena'].pk}/delete/"
    since = _last_event()

    page = admin_client.get(url)
    assert "north must keep a lead: lena is its last lead" in page.content.decode()
    assert admin_client.post(url, {"post": "yes"}).status_code == 200

    assert get_user_model().objects.filter(pk=world["lena"].pk).exists()
    assert _roles(world["lena"]) == {"north": "lead", "south": "lead"}
    assert _new_events(since) == []


def test_deleting_two_leads_of_a_site_at_once_is_refused(admin_client, world):
    f.user("max", Role.LEAD, world["north"])
    ids = [world["lena"].pk, get_user_model().objects.get(username="max").pk]
    since = _last_event()

    response = admin_client.post(
        USERS, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )

    assert response.status_code == 200
    assert "north must keep a lead: lena and max are its last leads" in response.content.decode()
    assert get_user_model().objects.filter(pk__in=ids).count() == 2
    assert _new_events(since) == []


def test_the_admins_own_password_page_is_checked_and_on_the_record_once(admin_client, world):
    url = "/admin/password_change/"
    since = _last_event()
    old = {"old_password": "lead-password-123"}

    weak = admin_client.post(url, {**old, "new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 200
    assert "entirely numeric" in str(weak.context["form"].errors)
    response = admin_client.post(
        url, {**old, "new_password1": "tidal-lantern-42", "new_password2": "tidal-lantern-42"}
    )

    assert response.status_code == 302
    assert get_user_model().objects.get(username="lead").check_password("tidal-lantern-42")
    assert _new_events(since) == [
        ("user.password", "lead", None, "lead", None, {"usable_password": True})
    ]
    assert admin_client.get("/admin/").status_code == 200  # still logged in
