"""Validation sets: a definition (filters over curated images) and its frozen versions.

A frozen version and its items are append-only (`AppendOnlyModel`): its number, items and
manifest checksum never change; later corrections make a new version.
"""

from django.conf import settings
from django.db import models

from portal.core.models import AppendOnlyModel
from portal.ingest.models import Image, Site


class ValidationSet(models.Model):
    """A named set and its current definition; freezing snapshots it into a version."""

    name = models.SlugField(unique=True, max_length=100)
    description = models.TextField(blank=True)
    sites = models.ManyToManyField(Site, related_name="validation_sets")
    # {"statuses": [...], "sex": "M"|"F"|None, "min_age_days", "max_age_days",
    #  "uploaded_after", "uploaded_before"} (dates as ISO strings, bounds inclusive)
    definition = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the set came from another portal's export: its manifest checksum there.
    imported_manifest_sha256 = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ValidationSetVersion(AppendOnlyModel):
    validation_set = models.ForeignKey(
        ValidationSet, on_delete=models.PROTECT, related_name="versions"
    )
    number = models.PositiveIntegerField()
    definition = models.JSONField(help_text="The definition as frozen, with its site slugs.")
    item_count = models.PositiveIntegerField()
    manifest_sha256 = models.CharField(max_length=64, db_index=True)
    provenance = models.JSONField(default=dict)
    frozen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    frozen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["validation_set", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["validation_set", "number"], name="one_number_per_validation_set"
            )
        ]

    def __str__(self) -> str:
        return f"{self.validation_set.name}:{self.number}"


class ValidationItem(AppendOnlyModel):
    """One image of a frozen version, with what it was frozen with."""

    version = models.ForeignKey(
        ValidationSetVersion, on_delete=models.PROTECT, related_name="items"
    )
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    sex = models.CharField(max_length=1)
    curated_age_days = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="of the stored file when frozen")

    class Meta:
        ordering = ["version", "image"]
        constraints = [
            models.UniqueConstraint(fields=["version", "image"], name="one_item_per_version_image")
        ]

    def __str__(self) -> str:
        return f"image {self.image_id} in {self.version_id}"


class ValidationExport(models.Model):
    """The ZIP of a frozen version, built by a Celery task with progress."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    version = models.ForeignKey(
        ValidationSetVersion, on_delete=models.PROTECT, related_name="exports"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    failure_reason = models.TextField(blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    file = models.CharField(max_length=255, blank=True, help_text="Relative to the data dir.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last time its build task was sent: a queued export is sent again by the sweep and by
    # a retry (docs/reliability.md, "When the broker is down").
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export of {self.version} ({self.state})"
