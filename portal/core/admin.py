from django import forms
from django.contrib import admin, messages

from portal.core import signing
from portal.core.models import ApiToken, TrustedPortal
from portal.core.tokens import token_create, token_revoke
from portal.core.trust import trusted_portal_add, trusted_portal_remove


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that are looked at in the admin, never added, changed or deleted there."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
