from django.contrib import admin

from portal.learning.models import TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "name", "mode", "parent", "state", "created_at", "activated_at")
    list_filter = ("mode", "state")
    readonly_fields = [f.name for f in TrainingJob._meta.fields]

    # Started, and activated, from the command line, the pages or the API, which check the lead
    # role and write the audit log; the admin only reads.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
