"""Model versions, prediction jobs and predictions (one per image and model version)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from inference_worker import heatmap_scales
from portal.core.models import AppendOnlyModel
from portal.ingest.models import Image, Site, Upload


class ModelVersion(models.Model):
    """A registered checkpoint folder under `models/<name>/`, verified by its sha256."""

    name = models.SlugField(unique=True, max_length=100)
    architecture = models.CharField(max_length=64)
    input_size = models.PositiveIntegerField()
    path = models.CharField(max_length=255, help_text="Checkpoint folder relative to the data dir.")
    sha256 = models.CharField(max_length=64)
    card = models.JSONField(help_text="The model card as registered.")
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")


class PredictionJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="jobs")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL)
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    failure_reason = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    # Dispatch rounds: 1 when created, one more each time the sweep re-dispatches a stalled job
    # (at most PORTAL_JOB_MAX_DISPATCHES). A dispatch task of an older round stops at once.
    dispatches = models.PositiveSmallIntegerField(default=0)
    # The last image id this round has sent: a dispatch that stopped resumes after it.
    dispatch_cursor = models.BigIntegerField(default=0)
    # The last time a batch was sent or an image of the job was answered: the stall clock.
    progressed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["finished_at", "progressed_at"], name="job_stall_idx")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.model_version.name}, {self.state})"


class JobImage(models.Model):
    """One image of one job: counted once, however often its answer arrives and however many
    unfinished jobs hold the image (an upload's job and a site-wide one)."""

    class State(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    # The unique (job, image) index serves lookups by job; no index of its own.
    job = models.ForeignKey(
        PredictionJob, on_delete=models.CASCADE, related_name="rows", db_index=False
    )
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "image"], name="one_row_per_job_and_image")
        ]
        # Dispatch walks a job's pending rows in image order.
        indexes = [models.Index(fields=["job", "state", "image"], name="job_image_pending_idx")]

    def __str__(self) -> str:
        return f"job {self.job_id} image {self.image_id}: {self.state}"


class Prediction(models.Model):
    """The outcome for one image under one model version: an age and heatmap, or a failure."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="predictions")
    # The image's site, repeated here so that a site's queue is one index range.
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions"
    )
    job = models.ForeignKey(
        PredictionJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="predictions"
    )
    age_days = models.PositiveIntegerField(null=True, blank=True)
    # Stored with the prediction so that the review queue is an index scan (DESIGN.md, Score):
    # residual = predicted - recorded age; score = |residual| / the model's expected error.
    residual_days = models.IntegerField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    heatmap = models.CharField(max_length=255, blank=True, help_text="Relative to the data dir.")
    # Empty for predictions stored before the worker sent it: `verify_storage` cannot check them.
    heatmap_sha256 = models.CharField(max_length=64, blank=True)

    class HeatmapScale(models.TextChoices):
        """How the stored PNG's levels read (inference_worker/heatmap.py): "signed" maps (issue 17)
        put no contribution at 128, pushes up above it and down below it; "positive" maps, from
        workers before that, are 0..255 Grad-CAM heat with the negative part cut off."""

        SIGNED = heatmap_scales.SIGNED
        POSITIVE = heatmap_scales.POSITIVE

    heatmap_scale = models.CharField(
        max_length=8, choices=HeatmapScale.choices, default=HeatmapScale.POSITIVE
    )
    # True: the model's gradient-weighted features are zero everywhere, the map shows nothing
    # (`inference_worker.heatmap.is_blank`). None: not known (no heatmap, or stored before).
    heatmap_blank = models.BooleanField(null=True, blank=True)
    # The version's current calibrated interval (`inference_worker.conformal.interval`) in days;
    # None while the version is uncalibrated. Rewritten when a new calibration is stored.
    interval_low_days = models.PositiveIntegerField(null=True, blank=True)
    interval_high_days = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    timing_ms = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["model_version", "score", "id"], name="prediction_queue_idx"),
            models.Index(
                fields=["model_version", "site", "score", "id"], name="prediction_site_queue_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "model_version"], name="one_prediction_per_image_and_version"
            )
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk} of image {self.image_id} by {self.model_version.name}"

    @property
    def succeeded(self) -> bool:
        return not self.error


class Calibration(AppendOnlyModel):
    """A model version's split-conformal calibration on a frozen validation set version
    (`inference_worker.conformal.calibrate`). Append-only: recalibrating adds a row, and the
    latest row of a version is its current calibration. The set is named by plain fields, not a
    foreign key: validation sets live above predictions (DESIGN.md, "Apps depend one way")."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="calibrations"
    )
    validation_set = models.CharField(max_length=100)
    validation_set_version = models.PositiveIntegerField()
    manifest_sha256 = models.CharField(max_length=64)
    coverage = models.FloatField(help_text="The goal, e.g. 0.9 for 90% intervals.")
    record = models.JSONField(help_text="The calibration as inference_worker.conformal made it.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["model_version", "-id"], name="calibration_current_idx")]

    def __str__(self) -> str:
        return (
            f"{self.model_version.name} calibrated on "
            f"{self.validation_set}:{self.validation_set_version} ({self.coverage:.0%})"
        )
