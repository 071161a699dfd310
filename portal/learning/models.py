"""Training jobs: a new model version learned from curated, frozen validation sets, from a
registered parent version (fine-tuning, or the cheaper site recalibration of its output)."""

from django.conf import settings
from django.db import models

from portal.ingest.models import Site
from portal.predictions.models import ModelVersion
from portal.reports.models import Report
from portal.validation.models import ValidationSetVersion


class TrainingJob(models.Model):
    """The intent (state first, the Celery message a nudge): what to learn from, from which
    parent, and what it became: a registered version, a report against the parent on a held-out
    set, and the lead's decision to activate it (never automatic)."""

    class Mode(models.TextChoices):
        FINETUNE = "finetune"
        RECALIBRATE = "recalibrate"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    name = models.SlugField(unique=True, max_length=100, help_text="The new version's name.")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    method = models.CharField(max_length=16, blank=True, help_text="linear or isotonic")
    parent = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    set_versions = models.ManyToManyField(ValidationSetVersion, related_name="+")
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    holdout = models.ForeignKey(
        ValidationSetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    epochs = models.PositiveIntegerField(default=0)
    cases = models.PositiveIntegerField(default=0)
    # The split as stated when the job was made (method, fraction, seed), with its counts once
    # the worker has made it; and the sets, versions and checksums the card records.
    split = models.JSONField(default=dict)
    provenance = models.JSONField(default=dict)
    fit = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    failure_reason = models.TextField(blank=True)
    result_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    report = models.ForeignKey(
        Report, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last time its task was sent: a queued job the worker never started is sent again.
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.mode} {self.parent.name} -> {self.name})"
