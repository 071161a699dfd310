"""STOW-RS (PS3.18 10.5): a multipart/related body of DICOM files stored into one site through
the ingest service, as one upload, each part answered by the standard response data set."""

import io
from collections import deque
from dataclasses import dataclass, field

import pydicom
from django.conf import settings

from portal.accounts.models import UPLOAD_ROLES
from portal.accounts.selectors import has_role, site_scope
from portal.ingest.dicom import file_meta_values
from portal.ingest.models import Image, Site, Upload, UploadFile
from portal.ingest.services import Stream
from portal.pacs.dicomweb import DicomWebError, element, instance_url
from portal.pacs.multipart import MultipartError, Part, read_parts
from portal.pacs.services import STATUS_DUPLICATE, STATUS_REFUSED


def stow_site(*, user, slug: str | None) -> Site:
    """The site a STOW-RS request stores into: `?site=` or the caller's one upload site."""
    sites = Site.objects.filter(site_scope(user=user, roles=UPLOAD_ROLES, field="pk"))
    if slug:
        site = Site.objects.filter(slug=slug).first()
        if site is None or not has_role(user=user, site_id=site.pk, roles=UPLOAD_ROLES):
            raise DicomWebError(403, f"you may not store into site {slug!r}")
        return site
    choices = list(sites[:2])
    if len(choices) != 1:
        raise DicomWebError(
            400 if choices else 403,
            "name the site with ?site=SLUG (you may store into more than one)"
            if choices
            else "you may not store into any site",
        )
    return choices[0]


@dataclass
class StowResult:
    stored: list[dict] = field(default_factory=list)  # ReferencedSOPSequence items
    failed: list[dict] = field(default_factory=list)  # FailedSOPSequence items
    warned: bool = False
    upload_id: int | None = None

    @property
    def http_status(self) -> int:
        """200 all stored, 202 some failed or warned, 409 none stored (PS3.18 10.5.3.1)."""
        if not self.stored and self.failed:
            return 409
        return 202 if self.failed or self.warned else 200

    def response(self) -> dict:
        body: dict = {}
        if self.failed:
            body["00081198"] = {"vr": "SQ", "Value": self.failed}
        body["00081199"] = {"vr": "SQ", "Value": self.stored}
        return body


def stow(*, user, site: Site, stream, content_type: str, base_url: str) -> StowResult:
    """Store every application/dicom part of a multipart/related body into `site` as one
    upload; a part that fails is named in the response and the rest go on. Parts are
    prepared by worker processes while earlier ones are recorded (`Stream(many=True)`); the
    response, sent when every part is committed, names each."""
    try:
        parts = read_parts(stream, content_type)
    except MultipartError as exc:
        raise DicomWebError(415 if "expected" in str(exc) else 400, str(exc)) from exc
    result = StowResult()
    upload: Stream | None = None
    sent: deque[tuple[str, str]] = deque()  # the sender's UIDs of the parts not yet recorded

    def answer(records: list[UploadFile]) -> None:
        for record in records:
            _answer(record, *sent.popleft(), result, base_url)

    try:
        for number, part in enumerate(parts, 1):
            if upload is None:
                sender = user.get_username()
                source = Upload.Source.DICOMWEB
                upload = Stream(site=site, source=source, sender=sender, user=user, many=True)
                result.upload_id = upload.upload.pk
            received = _received(part, number, result)
            if received is not None:
                sent.append(_sent_uids(received))
                answer(upload.submit(received, name=f"part {number}"))
        if upload is not None:
            answer(upload.drain())
    except MultipartError as exc:
        if upload is not None:
            answer(upload.drain())  # the whole parts before the broken one are stored too
        raise DicomWebError(400, str(exc)) from exc
    finally:
        if upload is not None:
            upload.close()
    if upload is None:
        raise DicomWebError(400, "the body holds no parts")
    return result


def _received(part: Part, number: int, result: StowResult) -> bytes | None:
    """The part's bytes, or None when it is refused before reading it as DICOM."""
    if part.content_type != "application/dicom":
        list(part.chunks())
        result.failed.append(
            _failed("", "", STATUS_REFUSED, f"part {number}: not application/dicom")
        )
        return None
    chunks, size = [], 0
    for chunk in part.chunks():
        chunks.append(chunk)
        size += len(chunk)
        if size > settings.PORTAL_MAX_FILE_BYTES:
            list(part.chunks())
            limit = settings.PORTAL_MAX_FILE_BYTES
            reason = f"part {number}: larger than the limit of {limit} bytes"
            result.failed.append(_failed("", "", STATUS_REFUSED, reason))
            return None
    return b"".join(chunks)  # a part read in one chunk is not copied again


def _answer(record: UploadFile, sop_class: str, sop: str, result: StowResult, base: str) -> None:
    if record.outcome == UploadFile.Outcome.REJECTED:
        result.failed.append(_failed(sop_class, sop, STATUS_REFUSED, record.reason))
        return
    image = record.image or (
        Image.objects.filter(pk=record.image_id).first() if record.image_id else None
    )
    item: dict = {"00081150": element("ReferencedSOPClassUID", sop_class)}
    if image is not None:
        item["00081155"] = element("ReferencedSOPInstanceUID", image.sop_instance_uid)
        item["00081190"] = element("RetrieveURL", instance_url(base, image))
    if record.outcome == UploadFile.Outcome.DUPLICATE:
        item["00081196"] = element("WarningReason", STATUS_DUPLICATE)
        result.warned = True
    result.stored.append(dict(sorted(item.items())))


def _failed(sop_class: str, sop: str, code: int, reason: str) -> dict:
    item = {
        "00081150": element("ReferencedSOPClassUID", sop_class),
        "00081155": element("ReferencedSOPInstanceUID", sop),
        "00081197": element("FailureReason", code),
        # The reason in words, as a C-STORE's Error Comment carries it.
        "00000902": {"vr": "LO", "Value": [reason]},
    }
    return item


def _sent_uids(data: bytes) -> tuple[str, str]:
    """The SOP Class and Instance UIDs the sender gave (the response names its instances by
    them), or empty strings when the part cannot be read that far: from the File Meta
    Information, where a Part 10 file repeats them, else from the data set."""
    meta = file_meta_values(data[:4096])
    if meta.get(0x0002) and meta.get(0x0003):
        return meta[0x0002], meta[0x0003]
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        return str(ds.get("SOPClassUID", "")), str(ds.get("SOPInstanceUID", ""))
    except Exception:  # noqa: BLE001 (the part's refusal says what is wrong with it)
        return "", ""
