"""Validation sets in the admin, to look at: frozen versions and their items never change."""

from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin
from portal.validation.models import (
    ValidationExport,
    ValidationItem,
    ValidationSet,
    ValidationSetVersion,
)


@admin.register(ValidationSet)
class ValidationSetAdmin(ReadOnlyAdmin):
    list_display = ["name", "created_at", "imported_manifest_sha256"]
    search_fields = ["name"]


@admin.register(ValidationSetVersion)
class ValidationSetVersionAdmin(ReadOnlyAdmin):
    list_display = ["validation_set", "number", "item_count", "manifest_sha256", "frozen_at"]
    list_filter = ["validation_set"]


@admin.register(ValidationItem)
class ValidationItemAdmin(ReadOnlyAdmin):
    list_display = ["version", "image", "site", "sex", "curated_age_days"]
    list_filter = ["site"]


@admin.register(ValidationExport)
class ValidationExportAdmin(ReadOnlyAdmin):
    list_display = ["version", "state", "done", "total", "size_bytes", "created_at"]
