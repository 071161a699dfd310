from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin
from portal.reports.models import Report


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "model_version", "compare_version", "state", "created_at"]
    list_filter = ["state"]
