"""DICOMweb endpoints under /dicomweb/ (`dicomweb` holds what they do): the portal's token,
basic or session authentication, and the caller's sites only."""

import json
from collections.abc import Callable

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from portal.accounts.audit import AuditAction
from portal.accounts.services import audit_record
from portal.ingest.models import Image
from portal.pacs import dicomweb, stow
from portal.pacs.dicomweb import DicomWebError
from portal.pacs.multipart import new_boundary, write_parts

DICOM_JSON = "application/dicom+json"


class _AnyAccept(BaseContentNegotiation):
    """DICOMweb answers in its own media types (multipart/related, application/dicom+json),
    which the views choose from Accept themselves."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/dicomweb").rstrip("/")


def _json(data: object, status: int = 200, ignored: list[str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(data), status=status, content_type=DICOM_JSON)
    if ignored:
        # PS3.18 8.3.4.1: keys that cannot be matched on are ignored, and said so.
        response["Warning"] = (
            f'299 portal: "These matching keys were ignored: {", ".join(ignored)}"'
        )
    return response


def _error(exc: DicomWebError) -> HttpResponse:
    return HttpResponse(str(exc) + "\n", status=exc.status, content_type="text/plain")


def _audit(request: Request, images: list[Image], action: AuditAction) -> None:
    for image in images:
        audit_record(actor=request.user, action=action, site_id=image.site_id, image_id=image.pk)


def _handled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def run(self, request: Request, **kwargs) -> HttpResponse:
        try:
            return view(self, request, **kwargs)
        except DicomWebError as exc:
            return _error(exc)

    return run


@extend_schema(exclude=True)
class DicomWebView(APIView):
    content_negotiation_class = _AnyAccept


class SearchView(DicomWebView):
    """QIDO-RS at one level: /studies, /series, /instances, under a study or series too."""

    level = dicomweb.STUDY

    @_handled
    def get(self, request: Request, **path: str) -> HttpResponse:
        names = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
        query = dicomweb.parse_search(
            self.level,
            request.query_params.items(),
            **{names[k]: v for k, v in path.items()},
        )
        results = dicomweb.search(user=request.user, query=query, base_url=_base_url(request))
        return _json(results, ignored=query.ignored)


class StudiesView(SearchView):
    """GET: QIDO-RS for studies. POST: STOW-RS (multipart/related; type="application/dicom")
    into `?site=SLUG` or the caller's one upload site, as one upload."""

    @_handled
    def post(self, request: Request) -> HttpResponse:
        site = stow.stow_site(user=request.user, slug=request.query_params.get("site"))
        if request.stream is None:
            raise DicomWebError(400, "the request has no body")
        result = stow.stow(
            user=request.user,
            site=site,
            stream=request.stream,  # the raw body, read part by part
            content_type=request.content_type,
            base_url=_base_url(request),
        )
        return _json(result.response(), status=result.http_status)


class RetrieveView(DicomWebView):
    """WADO-RS: a study, series or instance as multipart/related application/dicom parts."""

    @_handled
    def get(self, request: Request, study: str, series=None, sop=None) -> HttpResponse:
        images = dicomweb.instances(user=request.user, study=study, series=series, sop=sop)
        paths = [dicomweb.stored_path(image) for image in images]
        _audit(request, images, AuditAction.IMAGE_DICOM)
        boundary = new_boundary()
        body = write_parts(
            (("application/dicom", dicomweb.file_chunks(p)) for p in paths), boundary
        )
        return StreamingHttpResponse(
            body,
            content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        )


class MetadataView(DicomWebView):
    """WADO-RS metadata: each instance's header as DICOM JSON, without pixel data."""

    @_handled
    def get(self, request: Request, study: str, series=None, sop=None) -> HttpResponse:
        images = dicomweb.instances(user=request.user, study=study, series=series, sop=sop)
        _audit(request, images, AuditAction.IMAGE_DICOM)
        return _json(dicomweb.metadata(images))


class FramesView(DicomWebView):
    """WADO-RS frames: frame 1 as stored where Accept allows it (`transfer-syntax=*`, what
    Cornerstone asks for), else uncompressed (Explicit VR Little Endian)."""

    @_handled
    def get(self, request: Request, study: str, series: str, sop: str, frames: str):
        (image,) = dicomweb.instances(user=request.user, study=study, series=series, sop=sop)
        syntaxes = dicomweb.accepted_syntaxes(request.headers.get("Accept", ""))
        found = [dicomweb.frame(image, int(n), syntaxes) for n in frames.split(",")]
        _audit(request, [image], AuditAction.IMAGE_DICOM)
        boundary = new_boundary()
        parts = ((f"application/octet-stream; transfer-syntax={ts}", [data]) for data, ts in found)
        return HttpResponse(
            b"".join(write_parts(parts, boundary)),
            content_type=f'multipart/related; type="application/octet-stream"; boundary={boundary}',
        )


class RenderedView(DicomWebView):
    """WADO-RS rendered: the film as PNG or JPEG (JPEG unless Accept asks for PNG)."""

    @_handled
    def get(self, request: Request, study: str, series: str, sop: str, frames: str = "1"):
        (image,) = dicomweb.instances(user=request.user, study=study, series=series, sop=sop)
        if frames != "1":
            raise DicomWebError(404, f"frame {frames} does not exist (a radiograph has one frame)")
        accept = request.headers.get("Accept", "")
        media = (
            "image/png" if "image/png" in accept and "image/jpeg" not in accept else "image/jpeg"
        )
        data = dicomweb.rendered(image, media)
        _audit(request, [image], AuditAction.IMAGE_VIEW)
        return HttpResponse(data, content_type=media)
