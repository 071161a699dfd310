"""Sites are made and changed here, through the services (each change on the record); uploads
and images are looked at only: they change by ingest and review, never by hand."""

from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin
from portal.ingest import services
from portal.ingest.models import Image, Site, Upload, UploadFile


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "double_reading",
        "blind_reading",
        "keep_file_names",
        "created_at",
    ]
    search_fields = ["slug", "name"]
    fields = list(services.SITE_FIELDS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a site's images, reviews and audit events name it for good

    def save_model(self, request, obj: Site, form, change: bool) -> None:
        values = {field: form.cleaned_data[field] for field in form.changed_data}
        if change:
            saved = services.site_change(site=obj, user=request.user, **values)
        else:
            saved = services.site_create(
                user=request.user, **{f: form.cleaned_data[f] for f in services.SITE_FIELDS}
            )
        obj.pk = saved.pk


class UploadFileInline(admin.TabularInline):
    model = UploadFile
    fields = ["index", "entry", "name", "name_hash", "outcome", "reason", "warning", "image"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "site",
        "source",
        "status",
        "received_files",
        "total_files",
        "accepted_count",
        "duplicate_count",
        "rejected_count",
        "created_at",
    ]
    list_filter = ["status", "site", "source"]
    readonly_fields = [f.name for f in Upload._meta.fields]
    inlines = [UploadFileInline]


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "site",
        "sex",
        "age_days",
        "age_source",
        "modality",
        "view_position",
        "rows",
        "columns",
        "burned_in_annotation",
    ]
    list_filter = ["site", "sex", "age_source", "modality", "burned_in_annotation"]
    readonly_fields = [f.name for f in Image._meta.fields]
