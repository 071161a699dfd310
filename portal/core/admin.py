"""What every app's admin shares. The admin of core's own models (API tokens, trusted portals)
is in portal.accounts.admin: each change there is an audit event."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that are looked at in the admin, never added, changed or deleted there."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
