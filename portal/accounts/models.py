"""Roles on sites, and the append-only audit log of who did what.

The audit log lives here, in the lowest app, so that every area (ingest, predictions, review)
can write to it without depending on a higher one.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.core.models import AppendOnlyModel


class Role(models.TextChoices):
    UPLOADER = "uploader"
    REVIEWER = "reviewer"
    LEAD = "lead"


# What each role may do on its site; every role may read the site's data.
UPLOAD_ROLES = (Role.UPLOADER, Role.LEAD)
REVIEW_ROLES = (Role.REVIEWER, Role.LEAD)
LEAD_ROLES = (Role.LEAD,)


class Membership(models.Model):
    """One user's role on one site: the user sees and changes that site's data only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    site = models.ForeignKey("ingest.Site", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "site"], name="one_role_per_user_and_site")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} on {self.site}"


class AuditEvent(AppendOnlyModel):
    """Who did what, when (UTC), before -> after. Append-only: the queryset, the model, the
    admin and a database trigger refuse changes."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraints: an event outlives what it names, and the log is never cascaded.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40, db_index=True)
    site = models.ForeignKey(
        "ingest.Site", null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    image = models.ForeignKey(
        "ingest.Image",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    target = models.CharField(max_length=200, blank=True, help_text="e.g. the user changed")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["image", "id"], name="audit_image_idx"),
            models.Index(fields=["site", "id"], name="audit_site_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action}"
