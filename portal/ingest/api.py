"""REST endpoints of the ingest area: one view per operation (HackSoft style)."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import UPLOAD_ROLES
from portal.accounts.selectors import has_role
from portal.ingest import selectors, services
from portal.ingest.models import Site, Upload


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
        help_text="Relative path of each file (same order as `files`), e.g. from a folder.",
    )

    def validate(self, attrs: dict) -> dict:
        paths = attrs.get("paths")
        if paths and len(paths) != len(attrs["files"]):
            raise serializers.ValidationError("give one path per file, or none")
        return attrs


def _named_files(data: dict) -> list:
    paths = data.get("paths") or [f.name for f in data["files"]]
    return list(zip(paths, data["files"], strict=True))


class _ReportEntry(serializers.Serializer):
    file = serializers.CharField()
    image = serializers.IntegerField(required=False)
    sex = serializers.CharField(required=False)
    age_days = serializers.IntegerField(required=False)
    age_source = serializers.CharField(required=False)
    reason = serializers.CharField(required=False)


_STATUS_FIELDS = {
    "id": serializers.IntegerField(),
    "site": serializers.CharField(),
    "source": serializers.CharField(),
    "status": serializers.ChoiceField(choices=Upload.Status.choices),
    "failure_reason": serializers.CharField(),
    "total_files": serializers.IntegerField(),
    "processed_files": serializers.IntegerField(),
    "progress": serializers.FloatField(),
    "counts": serializers.DictField(child=serializers.IntegerField()),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
}
_StatusOutput = inline_serializer("UploadStatus", _STATUS_FIELDS)


class SiteListApi(APIView):
    class OutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Site
            fields = ["slug", "name"]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        sites = selectors.site_list(user=request.user)
        return Response(self.OutputSerializer(sites, many=True).data)


class UploadCreateApi(APIView):
    """Start an upload with many files; `finish=false` keeps it open for more batches."""

    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="UploadCreateInput")
    class InputSerializer(_FilesInput):
        finish = serializers.BooleanField(default=True)
        source = serializers.ChoiceField(
            choices=[Upload.Source.API, Upload.Source.WEB], default=Upload.Source.API
        )

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: _StatusOutput})
    def post(self, request: Request, slug: str) -> Response:
        site = _site_for_upload(request, slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            upload = services.upload_create(
                site=site, source=data.validated_data["source"], user=request.user
            )
            services.upload_receive_files(upload=upload, files=_named_files(data.validated_data))
            if data.validated_data["finish"]:
                services.upload_submit(upload=upload)
        upload.refresh_from_db()
        return Response(selectors.upload_status(upload=upload), status=status.HTTP_201_CREATED)


class UploadAddFilesApi(APIView):
    """Add a batch of files to an upload that is still receiving."""

    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="UploadFilesInput")
    class InputSerializer(_FilesInput):
        pass

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses=_StatusOutput)
    def post(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id, to_change=True)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.upload_receive_files(upload=upload, files=_named_files(data.validated_data))
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        upload.refresh_from_db()
        return Response(selectors.upload_status(upload=upload))


class UploadSubmitApi(APIView):
    """Close an upload to new files and start processing it."""

    @extend_schema(request=None, responses={202: _StatusOutput})
    def post(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id, to_change=True)
        try:
            with transaction.atomic():
                services.upload_submit(upload=upload)
        except services.IngestError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(selectors.upload_status(upload=upload), status=status.HTTP_202_ACCEPTED)


class UploadDetailApi(APIView):
    """Status, counts and the per-file report (the same lists as `ingest --json`)."""

    @extend_schema(
        responses=inline_serializer(
            "UploadDetail",
            {
                **_STATUS_FIELDS,
                "upload": serializers.IntegerField(),
                "accepted": _ReportEntry(many=True),
                "duplicates": _ReportEntry(many=True),
                "rejected": _ReportEntry(many=True),
            },
        )
    )
    def get(self, request: Request, upload_id: int) -> Response:
        upload = _upload(request, upload_id)
        return Response(
            {**selectors.upload_status(upload=upload), **selectors.upload_report(upload=upload)}
        )
