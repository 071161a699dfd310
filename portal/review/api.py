"""REST endpoints of the review area: images (detail, files, list), the queue and decisions
(the audit log's are `api_audit`). Every lookup goes through the user's site scope: another
site's image is 404."""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference_worker.ages import AGE_LIMIT_DAYS, DAYS_PER_YEAR, MAX_AGE_YEARS, SEXES
from portal.accounts.audit import AuditAction
from portal.accounts.models import REVIEW_ROLES
from portal.accounts.selectors import (
    holds_role_anywhere,
)
from portal.core.api import (
    CURSOR_PARAMETERS,
    WHOLE_NUMBER,
    TextField,
    cursor_page,
    cursor_page_schema,
    errors,
    single_values,
)
from portal.core.files import stored_file_response
from portal.ingest.models import Image, ReviewStatus
from portal.ingest.services.preview import PreviewUnavailable, image_preview_ensure
from portal.predictions.api import HEATMAP_FIELDS
from portal.predictions.blind import output_hidden
from portal.predictions.models import Prediction
from portal.predictions.selectors import latest_prediction
from portal.review import selectors, services
from portal.review.models import Decision, ExclusionReason
from portal.review.rules import ReviewError, ReviewForbidden


def _image(request: Request, image_id: int) -> Image:
    return get_object_or_404(
        selectors.image_scope(user=request.user).select_related("site", "lease_holder"),
        pk=image_id,
    )


# Query parameters of numbers or choices: empty is refused by the API (pages read it as "any").
_FILTER_CHOICES = ("sex", "status", "min_age_days", "max_age_days", "has_prediction", "reviewed")
_NOT_BLANK = (*_FILTER_CHOICES, "image", "limit")


def _filters(cls, request: Request):
    single_values(request, not_blank=_NOT_BLANK)
    try:
        return cls.from_query(request.query_params)
    except selectors.FilterError as exc:
        raise ValidationError({"detail": str(exc)}) from exc


_IMAGE_ROW = {
    "id": serializers.IntegerField(),
    "site": serializers.CharField(),
    "sex": serializers.CharField(),
    "recorded_age_days": serializers.IntegerField(),
    "curated_age_days": serializers.IntegerField(allow_null=True),
    "status": serializers.ChoiceField(choices=ReviewStatus.choices),
    "revision": serializers.IntegerField(),
    # Absent, not null, where blind reading hides the model's output (docs/review.md,
    # Blind reading).
    "predicted_age_days": serializers.IntegerField(allow_null=True, required=False),
    "score": serializers.FloatField(allow_null=True, required=False),
    "burned_in_annotation": serializers.BooleanField(),
}
_AGE_GROUP = OpenApiParameter(
    "age_group",
    str,
    description=f"recorded age in years, LOW-HIGH with 0 <= LOW < HIGH <= {MAX_AGE_YEARS}, "
    f"e.g. 1-3: the days [floor(LOW x {DAYS_PER_YEAR}), floor(HIGH x {DAYS_PER_YEAR}))",
)
_IMAGE_FILTERS = [
    OpenApiParameter("site", str),
    OpenApiParameter("sex", str, enum=list(SEXES)),
    OpenApiParameter("status", str, enum=ReviewStatus.values),
    OpenApiParameter("min_age_days", WHOLE_NUMBER),
    OpenApiParameter("max_age_days", WHOLE_NUMBER),
    _AGE_GROUP,
    OpenApiParameter("has_prediction", bool, description="with the active model's prediction"),
    OpenApiParameter("reviewed", bool, description="with a decision (any status but unreviewed)"),
]


class ImageListApi(APIView):
    """Images of the user's sites, by id, with their review state and active prediction."""

    @extend_schema(
        operation_id="images_list",
        parameters=_IMAGE_FILTERS + CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("ImageList", _IMAGE_ROW), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        filters = _filters(selectors.ImageFilters, request)
        images = selectors.image_list(user=request.user, filters=filters)
        return cursor_page(
            request, images, ["id"], lambda rows: selectors.image_rows(rows, user=request.user)
        )


_WADO_RS_URL = serializers.CharField(
    help_text="the instance under /dicomweb/ (WADO-RS: /metadata, /frames/1, /rendered), "
    "where the viewer loads the film from"
)
_WHY = serializers.CharField(
    required=False,
    allow_null=True,
    help_text="why the case is (or is not) in the queue, in one sentence of words and numbers "
    "(ages in years and months); absent while blind reading hides the model's output",
)
_PREDICTION = inline_serializer(
    "ImagePrediction",
    {
        "id": serializers.IntegerField(),
        "model": serializers.CharField(),
        "age_days": serializers.IntegerField(allow_null=True),
        "residual_days": serializers.IntegerField(allow_null=True),
        "score": serializers.FloatField(allow_null=True),
        # The version's calibrated interval; null while it is uncalibrated.
        "interval_low_days": serializers.IntegerField(allow_null=True),
        "interval_high_days": serializers.IntegerField(allow_null=True),
        "heatmap_url": serializers.CharField(allow_null=True),
        **HEATMAP_FIELDS,
    },
    allow_null=True,
    required=False,
)
_IMAGE_DETAIL = inline_serializer(
    "ImageDetail",
    {
        **{k: v for k, v in _IMAGE_ROW.items() if k != "status"},
        "uuid": serializers.UUIDField(),
        "upload": serializers.IntegerField(),
        "age_days": serializers.IntegerField(help_text="the recorded age (as recorded_age_days)"),
        "age_source": serializers.CharField(),
        "modality": serializers.CharField(),
        "view_position": serializers.CharField(),
        "rows": serializers.IntegerField(),
        "columns": serializers.IntegerField(),
        "pixel_spacing_mm": serializers.ListField(child=serializers.FloatField(), allow_null=True),
        "photometric_interpretation": serializers.CharField(),
        "transfer_syntax_uid": serializers.CharField(),
        "status": serializers.ChoiceField(choices=ReviewStatus.choices),
        "outcome": serializers.CharField(),
        "residual_days": serializers.IntegerField(allow_null=True, required=False),
        "lease": inline_serializer(
            "Lease",
            {
                "holder": serializers.CharField(),
                "expires_at": serializers.DateTimeField(),
                "mine": serializers.BooleanField(),
            },
            allow_null=True,
        ),
        "double_reading": serializers.BooleanField(),
        "blind_reading": serializers.BooleanField(help_text="the site reads blind"),
        "output_hidden": serializers.BooleanField(
            help_text="the model's output (predicted_age_days, residual_days, score, "
            "prediction) is left out until you decide on this image"
        ),
        "can_review": serializers.BooleanField(),
        "can_adjudicate": serializers.BooleanField(),
        "dicom_url": serializers.CharField(),
        "wado_rs_url": _WADO_RS_URL,
        "prediction": _PREDICTION,
        "why": _WHY,
        "other_films": serializers.ListField(
            help_text="the same pseudonymous patient's other films of this site, youngest first",
            child=inline_serializer(
                "PatientFilm",
                {
                    "id": serializers.IntegerField(),
                    "recorded_age_days": serializers.IntegerField(),
                    "view_position": serializers.CharField(),
                    "dicom_url": serializers.CharField(),
                    "wado_rs_url": _WADO_RS_URL,
                },
            ),
        ),
    },
)


class ImageDetailApi(APIView):
    """An image's metadata, recorded and curated age, review state and active prediction
    (absent while blind reading hides it from you)."""

    @extend_schema(responses=_IMAGE_DETAIL)
    def get(self, request: Request, image_id: int) -> Response:
        image = _image(request, image_id)
        services.image_access_record(user=request.user, image=image, action=AuditAction.IMAGE_VIEW)
        return Response(selectors.image_detail(user=request.user, image=image))


class ImageDicomApi(APIView):
    """The stored, de-identified DICOM file."""

    @extend_schema(responses={(200, "application/dicom"): bytes})
    def get(self, request: Request, image_id: int) -> FileResponse:
        image = _image(request, image_id)
        response = stored_file_response(image.file, "application/dicom")  # 404: no event
        services.image_access_record(user=request.user, image=image, action=AuditAction.IMAGE_DICOM)
        return response


class ImagePreviewApi(APIView):
    """A small JPEG of the film (at most 512 pixels on its long side, the file's own window),
    which the viewer draws while it decodes the DICOM file; 404 where it cannot be rendered."""

    @extend_schema(responses={(200, "image/jpeg"): bytes})
    def get(self, request: Request, image_id: int) -> FileResponse:
        image = _image(request, image_id)
        try:
            relative = image_preview_ensure(image=image)
        except PreviewUnavailable as exc:
            raise Http404("no preview of this image") from exc
        response = stored_file_response(relative, "image/jpeg")
        services.image_access_record(
            user=request.user, image=image, action=AuditAction.IMAGE_PREVIEW
        )
        return response


class ImageHeatmapApi(APIView):
    """The heatmap PNG of the image under `?model=` (default: the latest prediction's); 404
    while blind reading hides the model's output from you."""

    @extend_schema(
        parameters=[OpenApiParameter("model", str)],
        responses={(200, "image/png"): bytes, **errors(400)},
    )
    def get(self, request: Request, image_id: int) -> FileResponse:
        single_values(request, names=("model",))
        image = _image(request, image_id)
        if output_hidden(user=request.user, image=image):
            raise Http404("blind reading: the heatmap is shown once you have decided on this image")
        model = request.query_params.get("model")
        prediction = (
            Prediction.objects.filter(image=image, model_version__name=model, error="").first()
            if model
            else latest_prediction(image=image)
        )
        if prediction is None or not prediction.heatmap:
            raise Http404("no heatmap for this image")
        response = stored_file_response(prediction.heatmap, "image/png")
        services.image_access_record(
            user=request.user, image=image, action=AuditAction.IMAGE_HEATMAP
        )
        return response


_QUEUE_FILTERS = [
    OpenApiParameter("site", str),
    OpenApiParameter("sex", str, enum=list(SEXES)),
    _AGE_GROUP,
    OpenApiParameter("status", str, enum=[s.value for s in selectors.OPEN_STATUSES]),
]
_QUEUE_ROW = {
    "image": serializers.IntegerField(),
    "site": serializers.CharField(),
    "sex": serializers.ChoiceField(choices=list(SEXES)),
    # Absent where blind reading hides the model's output; the order still follows the score.
    "score": serializers.FloatField(required=False),
    "recorded_age_days": serializers.IntegerField(),
    "predicted_age_days": serializers.IntegerField(required=False),
    "residual_days": serializers.IntegerField(
        required=False, help_text="predicted minus recorded age"
    ),
    "why": _WHY,
    "status": serializers.ChoiceField(choices=ReviewStatus.choices),
}


class QueueApi(APIView):
    """Open cases above the score threshold, highest score first (cases leased to others out)."""

    @extend_schema(
        parameters=_QUEUE_FILTERS + CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("ReviewQueue", _QUEUE_ROW), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        filters = _filters(selectors.QueueFilters, request)
        predictions = selectors.queue(user=request.user, filters=filters).select_related(
            "image__site"
        )
        return cursor_page(
            request,
            predictions,
            ["-score", "-id"],
            lambda rows: selectors.queue_rows(rows, user=request.user),
        )


class QueueNextApi(APIView):
    """Take the next case: a lease holds it for you for a few minutes (204: queue empty)."""

    @extend_schema(
        parameters=_QUEUE_FILTERS,
        request=None,
        responses={
            200: inline_serializer(
                "QueueClaim",
                {
                    "image": serializers.IntegerField(),
                    "lease_expires_at": serializers.DateTimeField(),
                },
            ),
            204: OpenApiResponse(description="nothing is left in the queue"),
            **errors(400),
        },
    )
    def post(self, request: Request) -> Response:
        if not holds_role_anywhere(user=request.user, roles=REVIEW_ROLES):
            raise PermissionDenied("taking cases is for reviewers and leads")
        filters = _filters(selectors.QueueFilters, request)
        claim = services.queue_next(user=request.user, filters=filters)
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response({"image": claim.image_id, "lease_expires_at": claim.lease_expires_at})


_REVIEW_FIELDS = {
    "id": serializers.IntegerField(),
    "image": serializers.IntegerField(),
    "reviewer": serializers.CharField(),
    "decision": serializers.ChoiceField(choices=Decision.choices),
    "kind": serializers.CharField(),
    "age_days": serializers.IntegerField(allow_null=True),
    "reason": serializers.CharField(),
    "comment": serializers.CharField(),
    "based_on_revision": serializers.IntegerField(),
    "blind": serializers.BooleanField(help_text="made with the model's output hidden"),
    "created_at": serializers.DateTimeField(),
    "text": serializers.CharField(help_text="the decision in words"),
}
_CONFLICT = inline_serializer(
    "ReviewConflict",
    {
        "detail": serializers.CharField(),
        "revision": serializers.IntegerField(),
        "status": serializers.ChoiceField(choices=ReviewStatus.choices),
    },
)


class ImageReviewsApi(APIView):
    """An image's decisions (newest first), or a new decision on it."""

    @extend_schema_serializer(component_name="ReviewInput")
    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=Decision.choices)
        age_days = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=0,
            max_value=AGE_LIMIT_DAYS - 1,
            help_text="the corrected age in days (correct only): 0 to under 18 years",
        )
        reason = serializers.ChoiceField(
            choices=ExclusionReason.choices, required=False, allow_blank=True
        )
        comment = TextField(required=False, allow_blank=True, max_length=2000)
        revision = serializers.IntegerField(
            min_value=0, help_text="the image revision the decision was made on"
        )

        def validate(self, attrs: dict) -> dict:
            decision = attrs["decision"]
            if decision == Decision.CORRECT and attrs.get("age_days") is None:
                raise ValidationError({"age_days": ["a correction needs the age in days"]})
            if decision == Decision.EXCLUDE and not attrs.get("reason"):
                raise ValidationError({"reason": ["an exclusion needs a reason"]})
            other = attrs.get("reason") == ExclusionReason.OTHER
            if other and not attrs.get("comment", "").strip():
                raise ValidationError({"comment": ["say why, when the reason is other"]})
            return attrs

    @extend_schema(
        parameters=CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("ReviewList", _REVIEW_FIELDS), **errors(400)},
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = _image(request, image_id)
        reviews = selectors.review_list(user=request.user, image=image)
        return cursor_page(
            request, reviews, ["-id"], lambda rows: [selectors.review_data(r) for r in rows]
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                "ReviewCreated",
                {
                    **_REVIEW_FIELDS,
                    "revision": serializers.IntegerField(help_text="the image's new revision"),
                    "status": serializers.ChoiceField(choices=ReviewStatus.choices),
                },
            ),
            409: _CONFLICT,
            **errors(400),
        },
    )
    def post(self, request: Request, image_id: int) -> Response:
        image = _image(request, image_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            review = services.review_submit(
                image=image,
                reviewer=request.user,
                decision=values["decision"],
                age_days=values.get("age_days"),
                reason=values.get("reason", ""),
                comment=values.get("comment", ""),
                expected_revision=values["revision"],
            )
        except ReviewForbidden as exc:
            raise PermissionDenied(exc.detail) from exc
        except ReviewError as exc:
            current = exc.image or image
            return Response(
                {"detail": exc.detail, "revision": current.revision, "status": current.status},
                status=status.HTTP_409_CONFLICT,
            )
        review.image.refresh_from_db(fields=["revision", "status"])
        return Response(
            {
                **selectors.review_data(review),
                "revision": review.image.revision,
                "status": review.image.status,
            },
            status=status.HTTP_201_CREATED,
        )
