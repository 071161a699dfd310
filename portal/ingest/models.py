"""Sites, uploads (one dataset batch with a per-file report) and de-identified images."""

import secrets
import uuid

from django.conf import settings
from django.db import models


def _new_site_key() -> str:
    return secrets.token_hex(32)


class Site(models.Model):
    """A hospital that contributes images; its key makes UID and patient pseudonyms per site."""

    slug = models.SlugField(unique=True, max_length=64)
    name = models.CharField(max_length=200)
    # Secret of the site: keyed hashes of original UIDs and patient IDs use it, so the same
    # patient or instance maps to the same pseudonym within the site and to another elsewhere.
    pseudonym_key = models.CharField(max_length=64, default=_new_site_key, editable=False)
    double_reading = models.BooleanField(
        default=False,
        help_text="Two reviewers decide each case blind; a lead adjudicates when they disagree.",
    )
    # On: a reader study without the model in the room (docs/review.md, Blind reading); the rule
    # lives in `portal.predictions.blind`.
    blind_reading = models.BooleanField(
        default=False,
        help_text="Hide the model's prediction, residual, score and heatmap of an image from "
        "each member of the site until they have saved their own decision on it.",
    )
    # Off: an upload report keeps each file's position and a keyed hash of its name, never the
    # name itself, because PACS exports often name files and folders after the patient.
    keep_file_names = models.BooleanField(
        default=False,
        help_text="Keep uploaders' file and folder names in upload reports. Leave off unless "
        "this site's exports never put patient names or record numbers in file names.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Upload(models.Model):
    """One dataset batch. States: receiving -> submitted -> processing -> done | failed;
    receiving -> expired when left open too long. Every change of state happens under a row
    lock with a check of the state before it (`portal.ingest.services`)."""

    class Status(models.TextChoices):
        RECEIVING = "receiving"
        SUBMITTED = "submitted"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"
        EXPIRED = "expired"

    class Source(models.TextChoices):
        WEB = "web"
        API = "api"
        CLI = "cli"
        DICOM = "dicom"  # a DICOM association (C-STORE): one association, one upload
        DICOMWEB = "dicomweb"  # a STOW-RS request

    # Names the upload's staging folder: a primary key can come back after a rollback
    # (SQLite), a random token cannot.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="uploads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    # Who sent it, where the source is a DICOM peer: its calling AE title and address.
    sender = models.CharField(max_length=80, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVING)
    failure_reason = models.TextField(blank=True)
    # Files received so far: the next file's index is this plus one.
    received_files = models.PositiveIntegerField(default=0)
    total_files = models.PositiveIntegerField(default=0)
    processed_files = models.PositiveIntegerField(default=0)
    accepted_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # The last batch of files: an open upload expires a while after it (or after creation).
    last_received_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # The last time its processing task was sent (a submit, a resubmit or the sweep): a
    # submitted upload whose task never came is sent again
    # (docs/reliability.md, "When the broker is down").
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.site.slug}, {self.status})"


class UploadFile(models.Model):
    """One line of an upload's report: what happened to one file and why.

    The file is known by its position in the upload (`index`, and `entry` inside an archive)
    and a keyed hash of the uploader's name for it; the name itself only where the site keeps
    names (`Site.keep_file_names`)."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        DUPLICATE = "duplicate"
        REJECTED = "rejected"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="files")
    index = models.PositiveIntegerField(help_text="1 for the upload's first file, and so on.")
    entry = models.PositiveIntegerField(
        null=True, blank=True, help_text="1 for an archive's first entry; empty for a plain file."
    )
    # HMAC-SHA256 of the name under the site's key: the same name gives the same hash within
    # the site, and the name cannot be read back from it.
    name_hash = models.CharField(max_length=64)
    name = models.CharField(max_length=1024, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    # What an accepted (or duplicate) file's line warns of, one warning per line
    # (`portal.ingest.dicom.file_warnings` lists them); empty for none.
    warning = models.TextField(blank=True)
    image = models.ForeignKey(
        "Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["upload", "outcome", "id"], name="uploadfile_outcome_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.outcome}"

    @property
    def label(self) -> str:
        """How reports, pages and logs name the file: `#3`, or `#3/2` for entry 2 of an
        archive."""
        return f"#{self.index}" if self.entry is None else f"#{self.index}/{self.entry}"


class ReviewStatus(models.TextChoices):
    UNREVIEWED = "unreviewed"
    AWAITING_SECOND_READ = "awaiting_second_read"
    CONFIRMED = "confirmed"
    CORRECTED = "corrected"
    EXCLUDED = "excluded"
    DISPUTED = "disputed"
    ADJUDICATED = "adjudicated"


class Image(models.Model):
    """One de-identified DICOM instance with the metadata the model and reports need.

    The review fields at the end are derived from the image's reviews and written only by
    `portal.review.services`; they live on the image so that the queue, the image list and the
    validation sets filter on one indexed row per image.
    """

    class Sex(models.TextChoices):
        MALE = "M"
        FEMALE = "F"
        OTHER = "O"

    class AgeSource(models.TextChoices):
        BIRTHDATE = "birthdate", "birth date and study date"
        PATIENT_AGE = "patient_age", "PatientAge attribute"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="images")
    upload = models.ForeignKey(Upload, on_delete=models.PROTECT, related_name="images")
    file = models.CharField(max_length=255, help_text="Path relative to PORTAL_DATA_DIR.")
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    # sha256 of the pixel data element's value: the same film re-exported with new UIDs has
    # the same pixels, and is a duplicate within its site.
    pixel_sha256 = models.CharField(max_length=64, blank=True)
    # Why the inference worker could not decode the full image (ingest checks compressed
    # films without a full-resolution decode); empty while the image is readable.
    unreadable = models.CharField(max_length=500, blank=True)
    # Remapped (per-site keyed hash) UIDs: the same original instance maps to the same value,
    # which is what finds duplicates without keeping the original UID.
    sop_instance_uid = models.CharField(max_length=64)
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64)
    patient_pseudonym = models.CharField(max_length=32, db_index=True)
    sex = models.CharField(max_length=1, choices=Sex.choices)
    age_days = models.PositiveIntegerField()
    age_source = models.CharField(max_length=16, choices=AgeSource.choices)
    age_resolution_days = models.PositiveSmallIntegerField(
        default=1, help_text="1 when computed from dates; 7, 30 or 365 when read from PatientAge."
    )
    modality = models.CharField(max_length=16)
    view_position = models.CharField(max_length=16, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    pixel_spacing_mm = models.JSONField(null=True, blank=True)
    photometric_interpretation = models.CharField(max_length=16)
    bits_stored = models.PositiveSmallIntegerField()
    transfer_syntax_uid = models.CharField(max_length=64)
    manufacturer = models.CharField(max_length=128, blank=True)
    burned_in_annotation = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    status = models.CharField(
        max_length=24, choices=ReviewStatus.choices, default=ReviewStatus.UNREVIEWED
    )
    # The decision that settled the image (confirm, correct, exclude), also after adjudication.
    outcome = models.CharField(max_length=16, blank=True)
    curated_age_days = models.PositiveIntegerField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=0)
    first_reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["site", "status", "id"], name="image_site_status_idx"),
            models.Index(fields=["site", "pixel_sha256"], name="image_site_pixels_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "sop_instance_uid"], name="image_unique_instance_per_site"
            ),
            # Backs the duplicate check (which locks the site row) if two uploads race.
            models.UniqueConstraint(
                fields=["site", "pixel_sha256"],
                condition=~models.Q(pixel_sha256=""),
                name="image_unique_pixels_per_site",
            ),
        ]

    def __str__(self) -> str:
        return f"image {self.pk} ({self.site.slug})"

    @property
    def wado_rs_path(self) -> str:
        """Where DICOMweb serves this instance (WADO-RS, `portal.pacs`): the viewer loads it
        from here."""
        return (
            f"/dicomweb/studies/{self.study_instance_uid}/series/{self.series_instance_uid}"
            f"/instances/{self.sop_instance_uid}"
        )
