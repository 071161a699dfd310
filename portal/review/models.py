"""Immutable review decisions; an image's status and curated age are derived from them."""

from django.conf import settings
from django.db import models

from portal.core.models import AppendOnlyModel
from portal.ingest.models import Image


class Decision(models.TextChoices):
    CONFIRM = "confirm"
    CORRECT = "correct"
    EXCLUDE = "exclude"


class ExclusionReason(models.TextChoices):
    NOT_CHEST_PA_AP = "not_chest_pa_ap", "not a chest PA/AP film"
    POOR_QUALITY = "poor_quality", "poor quality"
    WRONG_PATIENT = "wrong_patient", "wrong patient"
    ADULT = "adult", "adult"
    OTHER = "other", "other (see comment)"


class Kind(models.TextChoices):
    SINGLE = "single"  # a site without double reading: the decision settles the image
    FIRST_READ = "first_read"
    SECOND_READ = "second_read"
    ADJUDICATION = "adjudication"  # a lead settles a dispute or revises a settled image


class Review(AppendOnlyModel):
    """One decision on one image, never changed or deleted (at every layer, down to database
    triggers): corrections are new reviews."""

    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    age_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="The age this decision gives the image (none: excluded)."
    )
    reason = models.CharField(max_length=32, choices=ExclusionReason.choices, blank=True)
    comment = models.TextField(blank=True)
    based_on_revision = models.PositiveIntegerField()
    # Made without the model's output in view (`portal.predictions.blind`): written once, from
    # the site's switch and the reviewer's earlier decisions at that moment, so that a later
    # change of the switch never rewrites what a decision was.
    blind = models.BooleanField(
        default=False,
        help_text="The model's output was hidden from the reviewer when they decided.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["image", "id"], name="review_image_idx")]
        constraints = [
            # Two decisions made on the same revision of an image cannot both land.
            models.UniqueConstraint(
                fields=["image", "based_on_revision"], name="one_review_per_image_revision"
            )
        ]

    def __str__(self) -> str:
        return f"{self.decision} of image {self.image_id} by {self.reviewer}"
