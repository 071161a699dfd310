import json

from django.contrib import admin, messages
from django.utils.html import format_html

from portal.core.admin import ReadOnlyAdmin
from portal.predictions import services
from portal.predictions.models import Calibration, ModelVersion, Prediction, PredictionJob


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    """Versions are registered by `model_register` (which checks the checkpoint) and kept:
    predictions name them. The one change made here is the `activate` action, on the record."""

    list_display = ["name", "architecture", "input_size", "is_active", "created_at"]
    readonly_fields = [
        "name",
        "architecture",
        "input_size",
        "path",
        "sha256",
        "is_active",
        "created_at",
        "model_card",
    ]
    exclude = ["card"]
    actions = ["activate"]

    @admin.display(description="model card")
    def model_card(self, obj: ModelVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.card, indent=2, sort_keys=True))

    @admin.action(description="Activate the selected version")
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        version = services.model_version_activate(version=queryset.get(), user=request.user)
        self.message_user(request, f"{version.name} is now the active model version.")


@admin.register(PredictionJob)
class PredictionJobAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "model_version",
        "site",
        "upload",
        "state",
        "total",
        "done_count",
        "failed_count",
        "created_at",
    ]
    list_filter = ["state", "model_version"]
    readonly_fields = [f.name for f in PredictionJob._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "model_version", "age_days", "error", "created_at"]
    list_filter = ["model_version"]
    readonly_fields = [f.name for f in Prediction._meta.fields]


@admin.register(Calibration)
class CalibrationAdmin(ReadOnlyAdmin):
    """Calibrations are made by `manage.py calibrate` and never changed (append-only)."""

    list_display = [
        "id",
        "model_version",
        "validation_set",
        "validation_set_version",
        "coverage",
        "created_at",
    ]
    list_filter = ["model_version"]
    readonly_fields = [f.name for f in Calibration._meta.fields]
