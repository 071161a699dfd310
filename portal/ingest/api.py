"""REST endpoints of the ingest area: one view per operation (HackSoft style).

An upload's status is a small document (state, counters, timestamps) that pages poll; its
per-file report is a separate cursor-paged list. Report lines name files by position (`#3`)
and carry the uploader's name only where the site keeps names."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import UPLOAD_ROLES
from portal.accounts.selectors import has_role
from portal.core.api import (
    CURSOR_PARAMETERS,
    cursor_page,
    cursor_page_schema,
    errors,
    single_values,
)
from portal.ingest import selectors, services
from portal.ingest.models import Site, Upload

_DETAIL = inline_serializer("UploadProblem", {"detail": serializers.CharField()})
_BAD_REQUEST = errors(400)[400]
_NOT_FOUND = OpenApiResponse(_DETAIL, description="no such upload or site of yours")
_CONFLICT = OpenApiResponse(_DETAIL, description="the upload takes no more files (or expired)")


def _site_for_upload(request: Request, slug: str) -> Site:
    """The user's site (404 for another), where they may upload (403 otherwise)."""
    site = get_object_or_404(selectors.site_list(user=request.user), slug=slug)
    if not has_role(user=request.user, site_id=site.pk, roles=UPLOAD_ROLES):
        raise PermissionDenied("uploading needs the uploader or lead role on this site")
    return site


def _upload(request: Request, upload_id: int, *, to_change: bool = False) -> Upload:
    upload = get_object_or_404(selectors.upload_list(user=request.user), pk=upload_id)
    if to_change and not has_role(user=request.user, site_id=upload.site_id, roles=UPLOAD_ROLES):
        raise PermissionDenied("uploading needs the uploader or lead role on this site")
    return upload


class _FilesInput(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    paths = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=1024),
        required=False,
        help_text="Relative path of each file (same order as `files`), e.g. from a folder. "
        "Kept only as a keyed hash unless the site keeps file names.",
    )

    def validate(self, attrs: dict) -> dict:
        paths = attrs.get("paths")
        if paths and len(paths) != len(attrs["files"]):
            raise serializers.ValidationError("give one path per file, or none")
        return attrs


def _named_files(data: dict) -> list:
    paths = data.get("paths") or [f.name for f in data["files"]]
    return list(zip(paths, data["files"], strict=True))


_STATUS_FIELDS = {
    "id": serializers.IntegerField(),
    "site": serializers.CharField(),
    "source": serializers.CharField(),
    "sender": serializers.CharField(
        help_text="a DICOM sender's calling AE title and address, or a STOW-RS user; else empty"
    ),
    "status": serializers.ChoiceField(choices=Upload.Status.choices),
    "failure_reason": serializers.CharField(),
    "received_files": serializers.IntegerField(help_text="files received so far"),
    "total_files": serializers.IntegerField(help_text="report lines (archive entries count)"),
    "processed_files": serializers.IntegerField(),
    "progress": serializers.FloatField(),
    "counts": inline_serializer(
        "UploadCounts",
        {
            "accepted": serializers.IntegerField(),
            "duplicates": serializers.IntegerField(),
            "rejected": serializers.IntegerField(),
        },
    ),
    "created_at": serializers.DateTimeField(),
    "submitted_at": serializers.DateTimeField(allow_null=True),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
    "expires_at": serializers.DateTimeField(
        allow_null=True, help_text="when an open upload expires unless a batch or submit comes"
    ),
}
_StatusOutput = inline_serializer("UploadStatus", _STATUS_FIELDS)

_REPORT_LINE = {
    "file": serializers.CharField(help_text="`#index`, or `#index/entry` inside an archive"),
    "index": serializers.IntegerField(help_text="the file's position in the upload, from 1"),
    "entry": serializers.IntegerField(allow_null=True, help_text="position in its archive"),
    "name": serializers.CharField(
        required=False, help_text="the uploader's name, only where the site keeps names"
    ),
    "outcome": serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"]),
    "image": serializers.IntegerField(
        required=False, help_text="the stored image (for a duplicate: the one it repeats)"
    ),
    "sex": serializers.CharField(required=False),
    "age_days": serializers.IntegerField(required=False),
    "age_source": serializers.CharField(required=False),
    "reason": serializers.CharField(required=False),
    "warning": serializers.CharField(
        allow_blank=True,
        help_text="what the line warns of, one warning per line of text; empty for none "
        "(an accepted file whose PatientAge disagrees with its dates)",
    ),
}


def _query(request: Request) -> dict:
    """The query parameters as a plain dict, each given at most once (400 otherwise): an
    empty `?status=` is then refused (400), not read as absent, as DRF reads form input."""
    single_values(request)
    return request.query_params.dict()


def _statuses(uploads: list[Upload]) -> list[dict]:
    return [selectors.upload_status(upload=upload) for upload in uploads]


class SiteListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Site
            fields = ["slug", "name"]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        sites = selectors.site_list(user=request.user)
        return Response(self.OutputSerializer(sites, many=True).data)


class UploadListApi(APIView):
    """The user's uploads, newest first, a cursor page at a time."""

    @extend_schema_serializer(component_name="UploadListQuery")
    class QuerySerializer(serializers.Serializer):
        site = serializers.SlugField(required=False, help_text="one site's uploads")
        status = serializers.ChoiceField(choices=Upload.Status.choices, required=False)

    @extend_schema(
        operation_id="uploads_list",
        parameters=[QuerySerializer, *CURSOR_PARAMETERS],
        responses={200: cursor_page_schema("UploadList", _STATUS_FIELDS), 400: _BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=_query(request))
        query.is_valid(raise_exception=True)
        uploads = selectors.upload_list(user=request.user, **query.validated_data)
        return cursor_page(request, uploads, ["-id"], _statuses)


class UploadCreateApi(APIView):
    """Start an upload with many files; `finish=false` keeps it open for more batches."""

    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="UploadCreateInput")
    class InputSerializer(_FilesInput):
        finish = serializers.BooleanField(default=True)
        source = serializers.ChoiceField(
            choices=[Upload.Source.API, Upload.Source.WEB], default=Upload.Source.API
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: _StatusOutput, 400: _BAD_REQUEST, 404: _NOT_FOUND},
    )
    def post(self, request: Request, slug: str) -> Response:
        site = _site_for_upload(request, slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            upload = services.upload_create(
                site=site, source=data.validated_data["source"], user=request.user
            )
            upload = services.upload_receive_files(
                upload=upload, files=_named_files(data.validated_data), user=request.user
            )
            if data.validated_data["finish"]:
                upload = services.upload_submit(upload=upload, user=request.user)
        return Response(selectors.upload_status(upload=upload), status=status.HTTP_201_CREATED)


class UploadFilesApi(APIView):
    """An upload's per-file report, a cursor page at a time (GET); a batch of files for an
    upload that is still receiving (POST)."""

    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="UploadFilesInput")
    class InputSerializer(_FilesInput):
        pass

    @extend_schema_serializer(component_name="UploadFilesQuery")
    class QuerySerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(
            choices=list(selectors.OUTCOME_GROUPS), required=False, help_text="one group only"
        )

    @extend_schema(
        parameters=[QuerySerializer, *CURSOR_PARAMETERS],
        responses={
            200: cursor_page_schema("UploadReport", _REPORT_LINE),
            400: _BAD_REQUEST,
            404: _NOT_FOUND,
        },
    )
    def get(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id)
        query = self.QuerySerializer(data=_query(request))
        query.is_valid(raise_exception=True)
        rows = selectors.upload_files(upload=upload, outcome=query.validated_data.get("outcome"))
        return cursor_page(
            request, rows, ["id"], lambda page: [selectors.upload_file_row(r) for r in page]
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={200: _StatusOutput, 400: _BAD_REQUEST, 404: _NOT_FOUND, 409: _CONFLICT},
    )
    def post(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id, to_change=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            upload = services.upload_receive_files(
                upload=upload, files=_named_files(data.validated_data), user=request.user
            )
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(selectors.upload_status(upload=upload))


class UploadSubmitApi(APIView):
    """Close an upload to new files and start processing it. Submitting a submitted upload
    again sends its processing again (a broker that was down may have lost the first send);
    it is processed once."""

    @extend_schema(
        request=None,
        responses={
            202: OpenApiResponse(_StatusOutput, description="submitted: processing follows"),
            200: OpenApiResponse(_StatusOutput, description="already processed (done, failed)"),
            404: _NOT_FOUND,
            409: OpenApiResponse(_DETAIL, description="the upload expired"),
        },
    )
    def post(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id, to_change=True)
        try:
            upload = services.upload_submit(upload=upload, user=request.user)
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        pending = upload.status in (Upload.Status.SUBMITTED, Upload.Status.PROCESSING)
        return Response(
            selectors.upload_status(upload=upload),
            status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK,
        )


class UploadDetailApi(APIView):
    """The upload's status document: state, counters and timestamps (the report is paged
    at `files/`)."""

    @extend_schema(responses={200: _StatusOutput, 404: _NOT_FOUND})
    def get(self, request: Request, upload_id: int) -> Response:
        return Response(selectors.upload_status(upload=_upload(request, upload_id)))
