"""Every action name the audit log knows, in one place: callers pass `AuditAction.X` to
`portal.accounts.services.audit_record`, which refuses a name that is not here. docs/review.md's
audit event list describes each one."""

from django.db import models


class AuditAction(models.TextChoices):
    # Users, roles and API tokens (site: the role's site; users and tokens have none).
    USER_CREATE = "user.create"
    USER_PASSWORD = "user.password"  # noqa: S105 (a name, not a password)
    USER_CHANGE = "user.change"  # name, details, flags, groups, permissions: before -> after
    USER_DELETE = "user.delete"  # after a role.revoke per site
    ROLE_GRANT = "role.grant"
    ROLE_CHANGE = "role.change"
    ROLE_REVOKE = "role.revoke"
    TOKEN_CREATE = "token.create"  # noqa: S105
    TOKEN_REVOKE = "token.revoke"  # noqa: S105
    # The portals whose signed exports this one imports (global: superusers see them).
    TRUSTED_PORTAL_ADD = "trusted_portal.add"
    TRUSTED_PORTAL_REMOVE = "trusted_portal.remove"
    # Sites (admin).
    SITE_CREATE = "site.create"
    SITE_CHANGE = "site.change"
    # Uploads and prediction jobs.
    UPLOAD_CREATE = "upload.create"
    UPLOAD_FILES = "upload.files"
    UPLOAD_SUBMIT = "upload.submit"
    DICOM_AE = "dicom.ae"  # a site's called AE title and the senders allowed to call it
    DICOM_ASSOCIATION = "dicom.association"  # accepted (with its counts) or refused
    JOB_CREATE = "job.create"
    # Model versions: global (no site); every lead sees them, as they change every queue.
    MODEL_REGISTER = "model.register"
    MODEL_ACTIVATE = "model.activate"
    MODEL_CALIBRATE = "model.calibrate"  # a calibration record stored for a version
    # Review: decisions, leases, and pixels handed out.
    REVIEW_CONFIRM = "review.confirm"
    REVIEW_CORRECT = "review.correct"
    REVIEW_EXCLUDE = "review.exclude"
    REVIEW_ADJUDICATE = "review.adjudicate"
    LEASE_TAKE = "lease.take"
    LEASE_RELEASE = "lease.release"
    IMAGE_VIEW = "image.view"
    IMAGE_DICOM = "image.dicom"
    IMAGE_HEATMAP = "image.heatmap"
    IMAGE_PREVIEW = "image.preview"  # the viewer's quick low-resolution JPEG of the film
    # Validation sets, their exports, and reports (one event per site of the set).
    VALIDATION_SET_CREATE = "validation_set.create"
    VALIDATION_SET_FREEZE = "validation_set.freeze"
    VALIDATION_SET_IMPORT = "validation_set.import"
    EXPORT_START = "export.start"
    EXPORT_DOWNLOAD = "export.download"
    REPORT_BUILD = "report.build"
    REPORT_DOWNLOAD = "report.download"


# Events without a site that every lead sees (besides superusers, who see everything): the
# active model decides every site's queue. Other site-less events (users, tokens) name people
# of other sites and stay with superusers.
LEAD_VISIBLE_GLOBAL = (
    AuditAction.MODEL_REGISTER,
    AuditAction.MODEL_ACTIVATE,
    AuditAction.MODEL_CALIBRATE,
)
