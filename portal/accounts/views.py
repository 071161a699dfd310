"""The team page: a lead manages who holds which role on the sites they lead, a cursor page
of memberships at a time."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.accounts import selectors, services
from portal.accounts.models import Membership, Role
from portal.core.pagination import view_page


def _lead_sites(request: HttpRequest):
    site_model = Membership._meta.get_field("site").related_model
    sites = site_model.objects.filter(
        selectors.site_scope(user=request.user, roles=[Role.LEAD], field="pk")
    )
    if not sites.exists():
        raise PermissionDenied("managing users is for the leads of a site")
    return sites


class GrantForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
    site = forms.ModelChoiceField(queryset=None, to_field_name="slug")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="for a new user; leave empty to generate one (shown once)",
    )

    def __init__(self, *args, sites, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites

    def clean_username(self) -> str:
        try:
            return services.username_normalise(self.cleaned_data["username"])
        except services.AccountsError as exc:
            raise forms.ValidationError(str(exc)) from exc


@login_required
def team(request: HttpRequest) -> HttpResponse:
    sites = _lead_sites(request)
    form = GrantForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        exists = get_user_model().objects.filter(username=data["username"]).exists()
        try:
            user, generated = services.user_add(
                actor=request.user,
                username=data["username"],
                role=data["role"],
                sites=[data["site"]],
                password=None if exists else (data["password"] or None),
            )
        except services.AccountsError as exc:  # a password or name rule, a site's last lead
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            note = f" Their password (shown once): {generated}" if generated else ""
            messages.success(
                request, f"{user.get_username()} is {data['role']} on {data['site'].slug}.{note}"
            )
            return redirect("accounts:team")
    page, next_url, previous_url = view_page(
        request, selectors.membership_list(user=request.user), keys=selectors.MEMBERSHIP_ORDER
    )
    return render(
        request,
        "accounts/team.html",
        {
            "form": form,
            "lead_sites": sites.order_by("slug"),
            "memberships": page.items,
            "next_url": next_url,
            "previous_url": previous_url,
        },
    )


@login_required
@require_POST
def revoke(request: HttpRequest, membership_id: int) -> HttpResponse:
    memberships = Membership.objects.filter(selectors.site_scope(user=request.user))
    membership = get_object_or_404(memberships.select_related("user", "site"), pk=membership_id)
    if not selectors.has_role(user=request.user, site_id=membership.site_id, roles=[Role.LEAD]):
        raise PermissionDenied("managing users is for the leads of the site")
    try:
        services.membership_revoke(actor=request.user, membership=membership)
    except services.AccountsError as exc:  # the site's last lead
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{membership.user.get_username()} no longer has a role on {membership.site.slug}.",
        )
    return redirect("accounts:team")
