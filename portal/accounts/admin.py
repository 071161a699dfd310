"""Users with their site roles, and the audit log (read-only: no change or delete path).

Every change to a user or a role goes through `portal.accounts.services`, so that the admin
follows the same rules as the team page and the commands (names, passwords, a site's last
lead) and each change lands in the audit log once."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from portal.accounts import services
from portal.accounts.models import AuditEvent, Membership
from portal.accounts.tokens import token_create, token_revoke
from portal.accounts.trust import trusted_portal_add, trusted_portal_remove
from portal.core import signing
from portal.core.admin import ReadOnlyAdmin
from portal.core.models import ApiToken, TrustedPortal

UserModel = get_user_model()


def _form_check(check, *args, **kwargs):
    """A service's rule as a form error, shown beside the field."""
    try:
        return check(*args, **kwargs)
    except services.AccountsError as exc:
        raise forms.ValidationError(str(exc)) from exc


class RefusalsAsMessages:
    """A refusal from the services (a site's last lead, a name or password rule) undoes the
    whole save, inlines included (the admin saves in one transaction), and the page says why."""

    def _refused(self, request, exc: services.AccountsError):
        self.message_user(request, f"Nothing was changed: {exc}", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except services.AccountsError as exc:
            return self._refused(request, exc)

    def delete_view(self, request, *args, **kwargs):
        try:
            return super().delete_view(request, *args, **kwargs)
        except services.AccountsError as exc:
            return self._refused(request, exc)

    def changelist_view(self, request, *args, **kwargs):
        # Actions (delete selected) run here: one transaction, so a refusal undoes them all.
        try:
            with transaction.atomic():
                return super().changelist_view(request, *args, **kwargs)
        except services.AccountsError as exc:
            return self._refused(request, exc)


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["site", "role"]
    extra = 0


@admin.register(Membership)
class MembershipAdmin(RefusalsAsMessages, admin.ModelAdmin):
    list_display = ["user", "site", "role", "created_at"]
    list_filter = ["role", "site"]
    search_fields = ["user__username", "site__slug"]

    def save_model(self, request, obj: Membership, form, change: bool) -> None:
        if change:  # a revoke of the old (site, role) and a grant of the new one
            saved = services.membership_change(
                actor=request.user, membership=obj, user=obj.user, site=obj.site, role=obj.role
            )
        else:
            saved = services.membership_grant(
                actor=request.user, user=obj.user, site=obj.site, role=obj.role
            )
        obj.pk = saved.pk

    def get_deleted_objects(self, objs, request):
        """The confirmation page refuses, with the reason, to take a site's last lead."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        refusals = services.last_lead_refusals(leaving=[o.pk for o in objs])
        return deleted, counts, perms_needed, [*protected, *refusals]

    def delete_model(self, request, obj: Membership) -> None:
        services.membership_revoke(actor=request.user, membership=obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset.select_related("user"):
            services.membership_revoke(actor=request.user, membership=membership)


class UserCreationForm(AdminUserCreationForm):
    def clean_username(self) -> str:
        return _form_check(services.username_clean, self.cleaned_data.get("username", ""))


class UserChangeForm(DjangoUserChangeForm):
    def clean_username(self) -> str:
        username = self.cleaned_data.get("username", "")
        if username == self.instance.get_username():
            return username
        return _form_check(services.username_clean, username, user=self.instance)


admin.site.unregister(UserModel)
# Roles are site memberships; Django's groups would grant admin permissions off the record.
admin.site.unregister(Group)


@admin.register(UserModel)
class UserWithRolesAdmin(RefusalsAsMessages, UserAdmin):
    """Creation, changes (name, details, flags, groups, permissions: one `user.change` event
    with before -> after), passwords and deletion go through the services, as do the roles
    in the inline (an edited role is a revoke plus a grant)."""

    form = UserChangeForm
    add_form = UserCreationForm
    inlines = [MembershipInline]
    readonly_fields = ["last_login", "date_joined"]  # facts, not settings

    def save_model(self, request, obj, form, change: bool) -> None:
        data = form.cleaned_data
        if change:
            fields = (*services.USER_FIELDS, *services.USER_RELATIONS)
            services.user_update(
                actor=request.user,
                user=obj,
                changes={name: data[name] for name in fields if name in data},
            )
            return
        user, _ = services.user_create(
            actor=request.user,
            username=obj.get_username(),
            password=data.get("password1") or None,
            usable_password=data.get("set_usable_password", True),
        )
        obj.pk = user.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request, form, formsets, change: bool) -> None:
        """The user's groups and permissions were saved by `user_update`; roles go through
        `save_formset`."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            services.membership_revoke(actor=request.user, membership=obj)
        for obj, _ in formset.changed_objects:
            services.membership_change(
                actor=request.user, membership=obj, user=form.instance, site=obj.site, role=obj.role
            )
        for obj in formset.new_objects:
            services.membership_grant(
                actor=request.user, user=form.instance, site=obj.site, role=obj.role
            )

    @method_decorator(sensitive_post_parameters())
    def user_change_password(self, request, id, form_url=""):
        """Django's page, with a valid new password set by `user_set_password` (checked, on
        the record); everything else (the form, its errors) as Django shows it."""
        user = self.get_object(request, unquote(id))
        if (
            request.method != "POST"
            or user is None
            or not self.has_change_permission(request, user)
        ):
            return super().user_change_password(request, id, form_url)
        form = self.change_password_form(user, request.POST)
        if not form.is_valid() or not (
            form.cleaned_data["set_usable_password"] or "unset-password" in request.POST
        ):
            return super().user_change_password(request, id, form_url)
        usable = form.cleaned_data["set_usable_password"]
        services.user_set_password(
            actor=request.user,
            user=user,
            password=form.cleaned_data["password1"] if usable else None,
        )
        self.log_change(request, user, self.construct_change_message(request, form, None))
        message = "Password changed successfully." if usable else "Password login was disabled."
        messages.success(request, message)
        update_session_auth_hash(request, user)
        opts = user._meta
        return HttpResponseRedirect(
            reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[user.pk]
            )
        )

    def get_deleted_objects(self, objs, request):
        """The confirmation page refuses, with the reason, to delete a site's last lead."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        leaving = Membership.objects.filter(user__in=[o.pk for o in objs]).values_list(
            "pk", flat=True
        )
        refusals = services.last_lead_refusals(leaving=list(leaving))
        return deleted, counts, perms_needed, [*protected, *refusals]

    def delete_model(self, request, obj) -> None:
        services.user_delete(actor=request.user, user=obj)

    def delete_queryset(self, request, queryset) -> None:
        for user in queryset:
            services.user_delete(actor=request.user, user=user)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "site", "image_id", "target"]
    list_filter = ["action", "site"]
    search_fields = ["actor_name", "target"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Adding a token shows its key once; only its sha256 is kept. Deleting revokes it."""

    list_display = ["prefix", "user", "name", "created_at"]
    search_fields = ["user__username", "name", "prefix"]
    fields = ["user", "name"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        token, key = token_create(actor=request.user, user=obj.user, name=obj.name)
        obj.pk = token.pk
        messages.warning(
            request,
            f"The key of this token, shown only now (copy it; it is stored nowhere): {key}",
        )

    def delete_model(self, request, obj: ApiToken) -> None:
        token_revoke(actor=request.user, token=obj)

    def delete_queryset(self, request, queryset) -> None:
        for token in queryset.select_related("user"):
            token_revoke(actor=request.user, token=token)


class TrustedPortalForm(forms.ModelForm):
    class Meta:
        model = TrustedPortal
        fields = ["name", "public_key"]

    def clean_public_key(self) -> str:
        try:
            return signing.public_key_normalise(self.cleaned_data["public_key"])
        except signing.SigningError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(TrustedPortal)
class TrustedPortalAdmin(admin.ModelAdmin):
    """Added and removed through the trust services (each an audit event); never edited in
    place: to change a key, remove the portal and add it again."""

    form = TrustedPortalForm
    list_display = ["name", "public_key", "added_by", "added_at"]
    search_fields = ["name", "public_key"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj: TrustedPortal, form, change: bool) -> None:
        # The form checked the name and the key for uniqueness already.
        portal = trusted_portal_add(actor=request.user, name=obj.name, public_key=obj.public_key)
        obj.pk, obj.added_at, obj.added_by = portal.pk, portal.added_at, portal.added_by

    def delete_model(self, request, obj: TrustedPortal) -> None:
        trusted_portal_remove(actor=request.user, portal=obj)

    def delete_queryset(self, request, queryset) -> None:
        for portal in queryset:
            trusted_portal_remove(actor=request.user, portal=portal)
