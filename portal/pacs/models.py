"""Who may send to the portal over DICOM: each site's called AE title and its senders."""

from django.core.exceptions import ValidationError
from django.db import models


def validate_ae_title(value: str) -> None:
    """An AE title (PS3.5 6.2, VR AE): 1 to 16 characters of ASCII without a backslash or
    control characters, not all spaces (leading and trailing spaces are not significant)."""
    if not value.strip() or len(value) > 16:
        raise ValidationError("an AE title has 1 to 16 characters")
    if any(not (" " <= ch <= "~") or ch == "\\" for ch in value):
        raise ValidationError("an AE title has ASCII letters, digits, spaces and punctuation only")


class SiteAE(models.Model):
    """The AE title a site's PACS sends to (its called AE title): one per site, one site per
    title, so the title alone says whose films arrive."""

    site = models.OneToOneField("ingest.Site", on_delete=models.CASCADE, related_name="dicom_ae")
    ae_title = models.CharField(max_length=16, unique=True, validators=[validate_ae_title])

    class Meta:
        verbose_name = "DICOM AE title"

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.site.slug})"


class AllowedSender(models.Model):
    """A calling AE title allowed to send to a site's AE title, from one address or any."""

    site_ae = models.ForeignKey(SiteAE, on_delete=models.CASCADE, related_name="senders")
    ae_title = models.CharField(max_length=16, validators=[validate_ae_title])
    address = models.GenericIPAddressField(
        null=True, blank=True, help_text="Empty: from any address."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["site_ae", "ae_title", "address"], name="pacs_sender_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.address or 'any'} -> {self.site_ae.ae_title}"
