"""PACS intake: which site a DICOM association is for, and what its sender is told.

The listener (`listener`) and DICOMweb both hand each received instance to the ingest service
(`portal.ingest.services.Stream`): the same checks, age rule, de-identification and
de-duplication as an upload, and an answer only after the commit."""

import ipaddress
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.ingest.models import Site, UploadFile
from portal.pacs.models import AllowedSender, SiteAE, validate_ae_title

# A-ASSOCIATE-RJ diagnostics (PS3.8 9.3.4, source: service user).
CALLED_AE_UNKNOWN = 0x07
CALLING_AE_UNKNOWN = 0x03

# C-STORE response statuses (PS3.4 B.2.3): a duplicate is a warning (the instance is held,
# under the first copy's record), a refused file a failure whose Error Comment says why, and
# a server-side failure (a full disk, a lost database) "out of resources", which a sender
# retries.
STATUS_SUCCESS = 0x0000
STATUS_DUPLICATE = 0xB000
STATUS_REFUSED = 0xC000
STATUS_OUT_OF_RESOURCES = 0xA700
ERROR_COMMENT_CHARS = 64  # Error Comment (0000,0902) is LO: 64 characters


@dataclass(frozen=True)
class Sender:
    ae_title: str
    address: str

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.address})"


def site_ae_state(site_ae: SiteAE) -> dict:
    senders = site_ae.senders.order_by("ae_title", "address")
    return {
        "ae_title": site_ae.ae_title,
        "senders": [f"{s.ae_title}@{s.address}" if s.address else s.ae_title for s in senders],
    }


def parse_sender(text: str) -> tuple[str, str | None]:
    """`SENDER_AE` or `SENDER_AE@ADDRESS` (an IPv4 or IPv6 address) as (title, address)."""
    title, _, address = text.rpartition("@") if "@" in text else (text, "", "")
    validate_ae_title(title)
    if address:
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError as exc:
            raise ValidationError(f"{address!r} is not an IP address") from exc
    return title.strip(), address or None


def site_ae_set(*, site: Site, ae_title: str, senders: list[str], actor=None) -> SiteAE:
    """Give `site` its called AE title and the senders (`AE` or `AE@ADDRESS`) allowed to call
    it, replacing what it had; audited with before and after."""
    validate_ae_title(ae_title)
    parsed = [parse_sender(text) for text in senders]
    with transaction.atomic():
        site_ae = SiteAE.objects.select_for_update().filter(site=site).first()
        before = site_ae_state(site_ae) if site_ae else None
        taken = SiteAE.objects.filter(ae_title=ae_title.strip()).exclude(site=site).first()
        if taken is not None:
            raise ValidationError(f"AE title {ae_title.strip()!r} belongs to another site")
        if site_ae is None:
            site_ae = SiteAE.objects.create(site=site, ae_title=ae_title.strip())
        else:
            site_ae.ae_title = ae_title.strip()
            site_ae.save(update_fields=["ae_title"])
            site_ae.senders.all().delete()
        AllowedSender.objects.bulk_create(
            AllowedSender(site_ae=site_ae, ae_title=title, address=address)
            for title, address in dict.fromkeys(parsed)
        )
        site_ae_audit(site_ae, actor=actor, before=before)
    return site_ae


def site_ae_audit(
    site_ae: SiteAE, *, actor=None, before: dict | None = None, deleted: bool = False
) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.DICOM_AE,
        site_id=site_ae.site_id,
        target=site_ae.ae_title,
        before=before,
        after=None if deleted else site_ae_state(site_ae),
    )


def association_site(*, called: str, calling: str, address: str) -> Site | int:
    """The site an association is for, or the A-ASSOCIATE-RJ diagnostic that refuses it: an
    unknown called AE title, or a calling AE title (from that address) the site did not allow."""
    site_ae = SiteAE.objects.select_related("site").filter(ae_title=called.strip()).first()
    if site_ae is None:
        return CALLED_AE_UNKNOWN
    allowed = site_ae.senders.filter(ae_title=calling.strip())
    if not any(s.address is None or s.address == address for s in allowed):
        return CALLING_AE_UNKNOWN
    return site_ae.site


def association_audit(
    *,
    called: str,
    sender: Sender,
    site: Site | None,
    refused: str = "",
    counts: dict[str, int] | None = None,
    upload_id: int | None = None,
) -> None:
    """One event per association: refused (and why) or ended, with what it sent."""
    audit_record(
        actor=None,
        action=AuditAction.DICOM_ASSOCIATION,
        site_id=site.pk if site else None,
        target=f"{sender} -> {called.strip()}",
        after={"refused": refused}
        if refused
        else {"upload": upload_id, **(counts or {"accepted": 0, "duplicate": 0, "rejected": 0})},
    )


def store_status(record: UploadFile) -> tuple[int, str]:
    """The C-STORE status of one stored file's report line, with its Error Comment."""
    if record.outcome == UploadFile.Outcome.ACCEPTED:
        return STATUS_SUCCESS, ""
    if record.outcome == UploadFile.Outcome.DUPLICATE:
        return STATUS_DUPLICATE, error_comment(f"duplicate: {record.reason}")
    return STATUS_REFUSED, error_comment(record.reason)


def error_comment(text: str) -> str:
    """`text` as an Error Comment: ASCII without backslashes, at most 64 characters."""
    clean = "".join(ch if " " <= ch <= "~" and ch != "\\" else "?" for ch in text)
    if len(clean) > ERROR_COMMENT_CHARS:
        clean = clean[: ERROR_COMMENT_CHARS - 3] + "..."
    return clean
