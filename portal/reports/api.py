"""REST endpoints of reports: ask for one (built by a Celery task after any missing
predictions), follow it, download it as HTML, CSV, JSON or PDF."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core.api import TextField, errors
from portal.predictions.models import ModelVersion
from portal.reports import output, selectors, services
from portal.reports.models import Report
from portal.validation import selectors as sets
from portal.validation.services import ValidationSetError, require_lead

_REPORT = inline_serializer(
    "Report",
    {
        "id": serializers.IntegerField(),
        "state": serializers.ChoiceField(choices=Report.State.choices),
        "failure_reason": serializers.CharField(),
        "validation_set": serializers.CharField(),
        "version": serializers.IntegerField(),
        "model": serializers.CharField(),
        "compare_model": serializers.CharField(allow_null=True),
        "predicted": serializers.IntegerField(),
        "to_predict": serializers.IntegerField(),
        "result": serializers.JSONField(allow_null=True),
        "downloads": serializers.DictField(child=serializers.CharField(), allow_null=True),
        "created_at": serializers.DateTimeField(),
        "finished_at": serializers.DateTimeField(allow_null=True),
    },
)


def report_request(*, user, values: dict) -> Report:
    """Shared by the API and the page: look up what was named (404 when unseen), check that
    the user leads the set's sites (403), then create the report (`ReportError`: bad input)."""
    try:
        name, number = sets.parse_ref(values["validation_set"])
        version = sets.version_get(user=user, name=name, number=number)
    except sets.NotFound as exc:
        raise Http404(str(exc)) from exc
    try:
        require_lead(user=user, sites=version.validation_set.sites.all())
    except ValidationSetError as exc:
        raise PermissionDenied(str(exc)) from exc
    model = get_object_or_404(ModelVersion, name=values["model"])
    compare = (
        get_object_or_404(ModelVersion, name=values["compare_model"])
        if values.get("compare_model")
        else None
    )
    groups = services.parse_age_groups(values.get("age_groups") or services.DEFAULT_GROUPS_TEXT)
    with transaction.atomic():
        return services.report_create(
            version=version,
            model=model,
            compare=compare,
            age_groups=groups,
            internal_sites=values.get("internal_sites") or [],
            user=user,
        )


class ReportCreateApi(APIView):
    """A report of a model (or two) on a frozen set (leads of the set's sites)."""

    @extend_schema_serializer(component_name="ReportCreateInput")
    class InputSerializer(serializers.Serializer):
        validation_set = TextField(help_text="NAME or NAME:VERSION")
        model = TextField()
        compare_model = TextField(required=False, allow_blank=True)
        age_groups = TextField(required=False, help_text="e.g. 0,1,3,6,12,18")
        internal_sites = serializers.ListField(child=serializers.SlugField(), required=False)

    @extend_schema(request=InputSerializer, responses={202: _REPORT, **errors(400, 404)})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            report = report_request(user=request.user, values=data.validated_data)
        except services.ReportError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(selectors.report_data(report), status=status.HTTP_202_ACCEPTED)


class ReportDetailApi(APIView):
    @extend_schema(responses=_REPORT)
    def get(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(selectors.report_list(user=request.user), pk=report_id)
        return Response(selectors.report_data(report))


class ReportDownloadApi(APIView):
    """The report as `html`, `csv`, `json` or `pdf`."""

    @extend_schema(
        parameters=[OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=list(output.FORMATS))],
        responses={
            (200, output.CONTENT_TYPES[fmt]): OpenApiTypes.OBJECT if fmt == "json" else bytes
            for fmt in output.FORMATS
        },
    )
    def get(self, request: Request, report_id: int, fmt: str) -> HttpResponse:
        report = get_object_or_404(selectors.report_list(user=request.user), pk=report_id)
        if fmt not in output.FORMATS or report.state != Report.State.DONE:
            raise Http404("no such download")
        response = HttpResponse(
            output.render(report=report, fmt=fmt), content_type=output.CONTENT_TYPES[fmt]
        )
        services.report_download_record(user=request.user, report=report, fmt=fmt)
        response["Content-Disposition"] = f'attachment; filename="report-{report.pk}.{fmt}"'
        return response
