"""REST endpoints of the predictions area; stored DICOM and heatmaps only for logged-in users."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.models import UPLOAD_ROLES
from portal.accounts.selectors import has_role, site_scope
from portal.core.api import (
    CURSOR_PARAMETERS,
    WHOLE_NUMBER,
    TextField,
    cursor_page,
    cursor_page_schema,
    errors,
    query_number,
    single_values,
)
from portal.ingest.models import Site, Upload
from portal.predictions import selectors, services
from portal.predictions.models import ModelVersion, Prediction, PredictionJob

_JOB_FIELDS = {
    "id": serializers.IntegerField(),
    "state": serializers.ChoiceField(choices=PredictionJob.State.choices),
    "failure_reason": serializers.CharField(),
    "model": serializers.CharField(),
    "site": serializers.CharField(allow_null=True),
    "upload": serializers.IntegerField(allow_null=True),
    "total": serializers.IntegerField(),
    "done": serializers.IntegerField(),
    "failed": serializers.IntegerField(),
    "progress": serializers.FloatField(),
    "eta_seconds": serializers.IntegerField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
}
_JOB = inline_serializer("PredictionJobStatus", _JOB_FIELDS)


def _render_jobs(jobs: list[PredictionJob]) -> list[dict]:
    return [selectors.job_status(job=job) for job in jobs]


def _render_predictions(predictions: list) -> list[dict]:
    return [selectors.prediction_data(prediction=p) for p in predictions]


class JobListCreateApi(APIView):
    """List jobs newest first in cursor pages (`?upload=`, `?site=`), or queue a job for a site
    or an upload."""

    @extend_schema_serializer(component_name="JobCreateInput")
    class InputSerializer(serializers.Serializer):
        site = serializers.SlugField(required=False)
        upload = serializers.IntegerField(required=False)
        model = TextField(required=False, help_text="default: the active version")

        def validate(self, attrs: dict) -> dict:
            if ("site" in attrs) == ("upload" in attrs):
                raise serializers.ValidationError("give a site or an upload")
            return attrs

    @extend_schema(
        operation_id="jobs_list",
        parameters=[OpenApiParameter("upload", WHOLE_NUMBER), OpenApiParameter("site", str)]
        + CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("PredictionJobPage", _JOB_FIELDS), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        # Each parameter once, and an empty `?upload=` refused: never read as "every job".
        single_values(request, not_blank=("upload", "limit"))
        jobs = selectors.job_list(
            user=request.user,
            upload_id=query_number(request, "upload"),
            site=request.query_params.get("site"),
        )
        return cursor_page(request, jobs, ["-id"], _render_jobs)

    @extend_schema(request=InputSerializer, responses={201: _JOB, **errors(400, 403, 404, 409)})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        scope = site_scope(user=request.user)
        site = (
            get_object_or_404(
                Site.objects.filter(site_scope(user=request.user, field="pk")),
                slug=values["site"],
            )
            if "site" in values
            else None
        )
        upload = (
            get_object_or_404(Upload.objects.filter(scope), pk=values["upload"])
            if "upload" in values
            else None
        )
        target = site or upload.site
        if not has_role(user=request.user, site_id=target.pk, roles=UPLOAD_ROLES):
            raise PermissionDenied("queueing predictions needs the uploader or lead role")
        version = (
            get_object_or_404(ModelVersion, name=values["model"]) if "model" in values else None
        )
        try:
            with transaction.atomic():
                job = services.prediction_job_create(
                    model_version=version, site=site, upload=upload, user=request.user
                )
        except services.PredictionError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(selectors.job_status(job=job), status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    @extend_schema(responses={200: _JOB, **errors(404)})
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(selectors.job_list(user=request.user), pk=job_id)
        return Response(selectors.job_status(job=job))


# Beside `heatmap_url`, in every prediction the API shows (here and in the image detail).
HEATMAP_FIELDS = {
    "heatmap_scale": serializers.ChoiceField(
        choices=Prediction.HeatmapScale.choices,
        allow_null=True,
        help_text="how the PNG's grey levels read: signed (128 = no contribution, above = pushes "
        "the predicted age up, below = down) or positive (older 0..255 maps); null: no heatmap",
    ),
    "heatmap_blank": serializers.BooleanField(
        allow_null=True,
        help_text="true: the model's gradient is zero on this image, the map shows nothing; "
        "null: no heatmap, or stored before this was recorded",
    ),
}

_PREDICTION_FIELDS = {
    "id": serializers.IntegerField(),
    "image": serializers.IntegerField(),
    "site": serializers.CharField(),
    "model": serializers.CharField(),
    "age_days": serializers.IntegerField(allow_null=True),
    "recorded_age_days": serializers.IntegerField(),
    "residual_days": serializers.IntegerField(allow_null=True),
    "score": serializers.FloatField(allow_null=True),
    # The calibrated interval (null while the model version is uncalibrated).
    "interval_low_days": serializers.IntegerField(allow_null=True),
    "interval_high_days": serializers.IntegerField(allow_null=True),
    "error": serializers.CharField(),
    "heatmap_url": serializers.CharField(allow_null=True),
    **HEATMAP_FIELDS,
    "timing_ms": serializers.DictField(),
    "created_at": serializers.DateTimeField(),
}


class PredictionListApi(APIView):
    """Predictions in id order, filtered by `?site=` and `?model=`, in cursor pages; on a
    blind-reading site, only those of images you have decided."""

    @extend_schema(
        parameters=[OpenApiParameter("site", str), OpenApiParameter("model", str)]
        + CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("PredictionPage", _PREDICTION_FIELDS), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        predictions = selectors.prediction_list(
            user=request.user,
            site=request.query_params.get("site"),
            model=request.query_params.get("model"),
        )
        return cursor_page(request, predictions, ["id"], _render_predictions)
