"""Users with their site roles, and the audit log (read-only: no change or delete path)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from portal.accounts import services
from portal.accounts.models import AuditEvent, Membership
from portal.core.admin import ReadOnlyAdmin

UserModel = get_user_model()


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["site", "role"]
    extra = 0


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "site", "role", "created_at"]
    list_filter = ["role", "site"]
    search_fields = ["user__username", "site__slug"]

    def save_model(self, request, obj: Membership, form, change: bool) -> None:
        services.membership_grant(actor=request.user, user=obj.user, site=obj.site, role=obj.role)

    def delete_model(self, request, obj: Membership) -> None:
        services.membership_revoke(actor=request.user, membership=obj)

    def delete_queryset(self, request, queryset) -> None:
        for membership in queryset.select_related("user"):
            services.membership_revoke(actor=request.user, membership=membership)


admin.site.unregister(UserModel)


@admin.register(UserModel)
class UserWithRolesAdmin(UserAdmin):
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change: bool) -> None:
        """Role changes go through the service, so that each lands in the audit log."""
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            services.membership_revoke(actor=request.user, membership=obj)
        for obj in [*formset.new_objects, *(o for o, _ in formset.changed_objects)]:
            services.membership_grant(
                actor=request.user, user=form.instance, site=obj.site, role=obj.role
            )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "site", "image_id", "target"]
    list_filter = ["action", "site"]
    search_fields = ["actor_name", "target"]
