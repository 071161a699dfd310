from django.contrib import admin, messages

from portal.core.models import ApiToken
from portal.core.tokens import token_create, token_revoke


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
