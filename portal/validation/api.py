"""REST endpoints of validation sets and their exports. A set is visible to users with a role on
each of its sites and changed by the leads of all of them; anything else answers 404 / 403."""

from django.http import FileResponse, Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference_worker.ages import AGE_LIMIT_DAYS, REPORTED_SEXES
from portal.accounts.selectors import site_scope
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
from portal.core.numbers import whole_number
from portal.ingest.models import ReviewStatus, Site
from portal.validation import exports, imports, selectors, services
from portal.validation.models import ValidationExport, ValidationSet, ValidationSetVersion


def _set(request: Request, name: str) -> ValidationSet:
    try:
        return selectors.validation_set_get(user=request.user, name=name)
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc


def _version(request: Request, name: str, number: int) -> ValidationSetVersion:
    try:
        return selectors.version_get(user=request.user, name=name, number=number)
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc


def _refused(exc: services.ValidationSetError):
    if isinstance(exc, services.ValidationSetForbidden):
        return PermissionDenied(str(exc))
    return ValidationError({"detail": str(exc)})


_VERSION = inline_serializer(
    "ValidationSetVersion",
    {
        "name": serializers.CharField(),
        "version": serializers.IntegerField(),
        "items": serializers.IntegerField(),
        "manifest_sha256": serializers.CharField(),
        "definition": serializers.JSONField(),
        "provenance": serializers.JSONField(),
        "frozen_at": serializers.DateTimeField(),
        "frozen_by": serializers.CharField(allow_null=True),
    },
)
_SET_FIELDS = {
    "name": serializers.CharField(),
    "description": serializers.CharField(),
    "sites": serializers.ListField(child=serializers.CharField()),
    "definition": serializers.JSONField(),
    "created_at": serializers.DateTimeField(),
    "versions": serializers.JSONField(),
    "imported": serializers.JSONField(
        allow_null=True,
        help_text="null for a set made here; else where it came from and its `signature`: "
        '{"status": "signed", "signed_by", "public_key", "key_id"} or {"status": "unsigned"}',
    ),
}
_SET = inline_serializer("ValidationSet", _SET_FIELDS)


class ValidationSetListCreateApi(APIView):
    """The sets you can see, or a new set from filters (leads of every site named)."""

    @extend_schema_serializer(component_name="ValidationSetCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.SlugField(max_length=100)
        sites = serializers.ListField(child=serializers.SlugField(), allow_empty=False)
        description = TextField(required=False, allow_blank=True)
        statuses = serializers.ListField(
            child=serializers.ChoiceField(
                choices=[ReviewStatus.CONFIRMED, ReviewStatus.CORRECTED, ReviewStatus.ADJUDICATED]
            ),
            required=False,
        )
        sex = serializers.ChoiceField(choices=list(REPORTED_SEXES), required=False, allow_null=True)
        min_age_days = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=AGE_LIMIT_DAYS - 1
        )
        max_age_days = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=AGE_LIMIT_DAYS - 1
        )
        age_group = serializers.CharField(
            required=False,
            allow_null=True,
            trim_whitespace=False,
            help_text="instead of min/max_age_days: LOW-HIGH in years, e.g. 1-3, the queue's "
            "[low, high) boundaries",
        )
        uploaded_after = serializers.DateField(required=False, allow_null=True)
        uploaded_before = serializers.DateField(required=False, allow_null=True)
        blind_only = serializers.BooleanField(
            required=False,
            help_text=(
                "only images whose every decision was made blind (docs/review.md, Blind reading)"
            ),
        )

    @extend_schema(
        operation_id="validation_sets_list",
        parameters=CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("ValidationSetList", _SET_FIELDS), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        sets = selectors.validation_set_list(user=request.user)
        return cursor_page(
            request, sets, ["name"], lambda rows: [selectors.validation_set_data(s) for s in rows]
        )

    @extend_schema(request=InputSerializer, responses={201: _SET, **errors(400, 404)})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        slugs = values.pop("sites")
        sites = list(Site.objects.filter(site_scope(user=request.user, field="pk"), slug__in=slugs))
        if len(sites) != len(set(slugs)):
            raise Http404("no such site")
        try:
            created = services.validation_set_create(user=request.user, sites=sites, **values)
        except services.ValidationSetError as exc:
            raise _refused(exc) from exc
        return Response(selectors.validation_set_data(created), status=status.HTTP_201_CREATED)


class ValidationSetImportApi(APIView):
    """Import another portal's export (a ZIP): it must be signed by a portal this one trusts,
    or be unsigned with `allow_unsigned`; otherwise 400 with the reason, and nothing is kept.
    Leads of every target site (`site_prefix` + the export's sites); creating a site takes an
    administrator (403)."""

    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="ValidationSetImportInput")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="the export's ZIP")
        site_prefix = serializers.CharField(required=False, allow_blank=True, max_length=40)
        name = serializers.SlugField(required=False, max_length=100)
        allow_unsigned = serializers.BooleanField(
            default=False, help_text="accept an unsigned export (recorded as unsigned)"
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: _SET, **errors(400, 403)},
    )
    def post(self, request: Request) -> Response:
        if not imports.may_import(user=request.user):
            raise PermissionDenied("only leads and administrators import validation sets")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            version = imports.import_upload(
                upload=values["file"],
                site_prefix=values.get("site_prefix", ""),
                name=values.get("name"),
                user=request.user,
                allow_unsigned=values["allow_unsigned"],
            )
        except services.ValidationSetError as exc:
            raise _refused(exc) from exc
        found = selectors.validation_set_get(user=request.user, name=version.validation_set.name)
        return Response(selectors.validation_set_data(found), status=status.HTTP_201_CREATED)


class ValidationSetDetailApi(APIView):
    @extend_schema(responses=_SET)
    def get(self, request: Request, name: str) -> Response:
        return Response(selectors.validation_set_data(_set(request, name)))


class ValidationSetFreezeApi(APIView):
    """Freeze what the definition selects now as a new version (leads of every site)."""

    @extend_schema(request=None, responses={201: _VERSION, **errors(400)})
    def post(self, request: Request, name: str) -> Response:
        found = _set(request, name)
        try:
            version = services.validation_set_freeze(validation_set=found, user=request.user)
        except services.ValidationSetError as exc:
            raise _refused(exc) from exc
        return Response(selectors.version_data(version), status=status.HTTP_201_CREATED)


class ValidationSetVersionApi(APIView):
    @extend_schema(responses=_VERSION)
    def get(self, request: Request, name: str, number: int) -> Response:
        return Response(selectors.version_data(_version(request, name, number)))


class ValidationSetItemsApi(APIView):
    """A version's items by image, cursor-paginated."""

    @extend_schema(
        parameters=CURSOR_PARAMETERS,
        responses={
            200: cursor_page_schema(
                "ValidationItems",
                {
                    "image": serializers.IntegerField(),
                    "site": serializers.CharField(),
                    "sex": serializers.CharField(),
                    "curated_age_days": serializers.IntegerField(),
                    "sha256": serializers.CharField(),
                },
            ),
            **errors(400),
        },
    )
    def get(self, request: Request, name: str, number: int) -> Response:
        version = _version(request, name, number)
        return cursor_page(request, version.items.select_related("site"), ["image_id"], _items)


def _items(items) -> list[dict]:
    return [
        {
            "image": i.image_id,
            "site": i.site.slug,
            "sex": i.sex,
            "curated_age_days": i.curated_age_days,
            "sha256": i.sha256,
        }
        for i in items
    ]


class ValidationSetDiffApi(APIView):
    """Items added, removed or re-aged between two versions (`?from=1&to=2`)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", WHOLE_NUMBER, required=True),
            OpenApiParameter("to", WHOLE_NUMBER, required=True),
        ],
        responses={
            200: inline_serializer(
                "ValidationSetDiff",
                {
                    "from": serializers.IntegerField(),
                    "to": serializers.IntegerField(),
                    "added": serializers.JSONField(),
                    "removed": serializers.JSONField(),
                    "reaged": serializers.JSONField(),
                },
            ),
            **errors(400),
        },
    )
    def get(self, request: Request, name: str) -> Response:
        single_values(request, not_blank=("from", "to"))
        numbers = [whole_number(request.query_params.get(k)) for k in ("from", "to")]
        if None in numbers:
            raise ValidationError({"detail": "give ?from=V1&to=V2"})
        old, new = (_version(request, name, n) for n in numbers)
        return Response(services.version_diff(old=old, new=new))


_EXPORT = inline_serializer(
    "ValidationExport",
    {
        "id": serializers.IntegerField(),
        "state": serializers.ChoiceField(choices=ValidationExport.State.choices),
        "done": serializers.IntegerField(),
        "total": serializers.IntegerField(),
        "progress": serializers.FloatField(),
        "failure_reason": serializers.CharField(),
        "size_bytes": serializers.IntegerField(allow_null=True),
        "sha256": serializers.CharField(),
        "download_url": serializers.CharField(allow_null=True),
    },
)


def export_data(export: ValidationExport) -> dict:
    version = export.version
    done = export.state == ValidationExport.State.DONE
    return {
        "id": export.pk,
        "state": export.state,
        "done": export.done,
        "total": export.total,
        "progress": round(export.done / export.total, 4) if export.total else 1.0,
        "failure_reason": export.failure_reason,
        "size_bytes": export.size_bytes,
        "sha256": export.sha256,
        "download_url": f"/api/validation-sets/{version.validation_set.name}/versions/"
        f"{version.number}/export/download/"
        if done
        else None,
    }


class ValidationSetExportApi(APIView):
    """The version's latest export (`GET`), or a new one built by a Celery task (`POST`)."""

    @extend_schema(responses=_EXPORT)
    def get(self, request: Request, name: str, number: int) -> Response:
        export = _version(request, name, number).exports.order_by("-created_at").first()
        if export is None:
            raise Http404("not exported yet")
        return Response(export_data(export))

    @extend_schema(request=None, responses={202: _EXPORT})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = _version(request, name, number)
        try:
            services.require_lead(user=request.user, sites=version.validation_set.sites.all())
        except services.ValidationSetError as exc:
            raise _refused(exc) from exc
        export = exports.export_start(version=version, user=request.user)
        return Response(export_data(export), status=status.HTTP_202_ACCEPTED)


class ValidationSetExportDownloadApi(APIView):
    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request: Request, name: str, number: int) -> FileResponse:
        version = _version(request, name, number)
        export = version.exports.filter(state=ValidationExport.State.DONE).first()
        if export is None:
            raise Http404("not exported yet")
        response = stored_file_response(export.file, "application/zip")
        exports.export_download_record(user=request.user, export=export)
        response["Content-Disposition"] = f'attachment; filename="{name}-v{number}.zip"'
        return response
