from django.contrib import admin

from portal.ingest.models import Image, Site, Upload, UploadFile


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "keep_file_names", "created_at"]
    search_fields = ["slug", "name"]


class UploadFileInline(admin.TabularInline):
    model = UploadFile
    fields = ["index", "entry", "name", "name_hash", "outcome", "reason", "image"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
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
class ImageAdmin(admin.ModelAdmin):
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
