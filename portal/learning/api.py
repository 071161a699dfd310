"""REST endpoints of training jobs: start one (leads), follow its progress, and activate what it
produced once its report against the parent says so."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core.api import CURSOR_PARAMETERS, TextField, cursor_page, cursor_page_schema, errors
from portal.learning import selectors, services
from portal.learning.models import TrainingJob

_FIELDS = {
    "id": serializers.IntegerField(),
    "name": serializers.CharField(help_text="the new model version's name"),
    "mode": serializers.ChoiceField(choices=TrainingJob.Mode.choices),
    "method": serializers.CharField(allow_null=True),
    "parent": serializers.CharField(),
    "parent_sha256": serializers.CharField(),
    "site": serializers.CharField(allow_null=True),
    "held_out": serializers.CharField(allow_null=True),
    "cases": serializers.IntegerField(),
    "epochs": serializers.IntegerField(),
    "split": serializers.DictField(help_text="how the cases were split, with the counts"),
    "validation_sets": serializers.ListField(child=serializers.DictField()),
    "state": serializers.ChoiceField(choices=TrainingJob.State.choices),
    "failure_reason": serializers.CharField(),
    "progress": serializers.FloatField(),
    "epoch": serializers.IntegerField(allow_null=True),
    "eta_seconds": serializers.IntegerField(allow_null=True),
    "fit": serializers.DictField(),
    "model": serializers.CharField(allow_null=True),
    "model_sha256": serializers.CharField(allow_null=True),
    "report": serializers.DictField(allow_null=True),
    "activated_at": serializers.DateTimeField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "finished_at": serializers.DateTimeField(allow_null=True),
}
_JOB = inline_serializer("TrainingJob", _FIELDS)


def _render(jobs: list[TrainingJob]) -> list[dict]:
    return [selectors.training_job_status(job=job) for job in jobs]


class TrainingJobListCreateApi(APIView):
    """Training jobs newest first, in cursor pages; or start one (leads of every site of the
    sets named)."""

    @extend_schema_serializer(component_name="TrainingJobCreateInput")
    class InputSerializer(serializers.Serializer):
        parent = TextField()
        validation_sets = serializers.ListField(
            child=TextField(), min_length=1, help_text="NAME or NAME:VERSION"
        )
        name = serializers.SlugField(max_length=100)
        recalibrate_only = serializers.BooleanField(default=False)
        method = serializers.ChoiceField(choices=services.METHODS, default=services.DEFAULT_METHOD)
        site = serializers.SlugField(required=False)
        held_out = TextField(required=False, help_text="NAME or NAME:VERSION of other patients")
        epochs = serializers.IntegerField(min_value=1, max_value=1000, default=3)
        max_cases = serializers.IntegerField(min_value=1, required=False)
        seed = serializers.IntegerField(default=0)

    @extend_schema(
        operation_id="training_jobs_list",
        parameters=CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("TrainingJobPage", _FIELDS), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        return cursor_page(
            request, selectors.training_job_list(user=request.user), ["-id"], _render
        )

    @extend_schema(request=InputSerializer, responses={201: _JOB, **errors(400, 403, 404)})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        try:
            with transaction.atomic():
                job = services.training_job_request(
                    user=request.user,
                    parent=values.pop("parent"),
                    validation_sets=values.pop("validation_sets"),
                    name=values.pop("name"),
                    holdout=values.pop("held_out", None),
                    site=values.pop("site", None),
                    **values,
                )
        except services.TrainingForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.TrainingNotFound as exc:
            raise NotFound(str(exc)) from exc
        except services.TrainingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(selectors.training_job_status(job=job), status=status.HTTP_201_CREATED)


class TrainingJobDetailApi(APIView):
    @extend_schema(responses={200: _JOB, **errors(404)})
    def get(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(selectors.training_job_list(user=request.user), pk=job_id)
        return Response(selectors.training_job_status(job=job))


class TrainingJobActivateApi(APIView):
    """The lead's decision: make the job's new version the active one."""

    @extend_schema(request=None, responses={200: _JOB, **errors(403, 404, 409)})
    def post(self, request: Request, job_id: int) -> Response:
        job = get_object_or_404(selectors.training_job_list(user=request.user), pk=job_id)
        try:
            services.training_job_activate(job=job, user=request.user)
        except services.TrainingForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.TrainingError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(selectors.training_job_status(job=job))
