"""Error reports of a model version (or two side by side) on a frozen validation set."""

from django.conf import settings
from django.db import models

from portal.predictions.models import ModelVersion
from portal.validation.models import ValidationSetVersion


class Report(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        PREDICTING = "predicting"  # missing predictions are being made first
        DONE = "done"
        FAILED = "failed"

    version = models.ForeignKey(ValidationSetVersion, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    compare_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    age_groups = models.JSONField(help_text="[[low, high], ...] in years")
    internal_sites = models.JSONField(default=list, blank=True)
    resamples = models.PositiveIntegerField(default=1000)
    seed = models.IntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    failure_reason = models.TextField(blank=True)
    jobs = models.JSONField(default=list, blank=True, help_text="prediction jobs it waits for")
    result = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last time its build task was sent: a queued report is sent again by the sweep
    # (docs/reliability.md, "When the broker is down").
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.pk} ({self.version}, {self.model_version.name})"
