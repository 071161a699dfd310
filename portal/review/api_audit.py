"""REST endpoints of the audit log: an image's events, the leads' log of their sites and its
CSV export. Every lookup goes through the user's site scope."""

import json

from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.accounts.selectors import (
    audit_data,
    audit_list,
    is_lead_anywhere,
)
from portal.core.api import (
    CURSOR_PARAMETERS,
    WHOLE_NUMBER,
    cursor_page,
    cursor_page_schema,
    errors,
    query_number,
    single_values,
)
from portal.core.csv_cells import SafeWriter
from portal.review import selectors
from portal.review.api import _NOT_BLANK, _image
from portal.review.history import event_text

_AUDIT_FIELDS = {
    "id": serializers.IntegerField(),
    "at": serializers.DateTimeField(),
    "actor": serializers.CharField(),
    "action": serializers.CharField(),
    "site": serializers.CharField(allow_null=True),
    "image": serializers.IntegerField(allow_null=True),
    "target": serializers.CharField(),
    "before": serializers.JSONField(allow_null=True),
    "after": serializers.JSONField(allow_null=True),
    "text": serializers.CharField(help_text="the event in words, changes as field: old -> new"),
}


def _audit_rows(events) -> list[dict]:
    return [{**audit_data(event=e), "text": event_text(e)} for e in events]


class ImageAuditApi(APIView):
    """The image's history: every decision, lease, view and download, newest first."""

    @extend_schema(
        parameters=CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("ImageAudit", _AUDIT_FIELDS), **errors(400)},
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = _image(request, image_id)
        events = selectors.image_audit(user=request.user, image=image)
        return cursor_page(request, events, ["-id"], _audit_rows)


_AUDIT_FILTERS = [
    OpenApiParameter("site", str),
    OpenApiParameter("image", WHOLE_NUMBER),
    OpenApiParameter("action", str, description="prefix, e.g. `review.` or `role.`"),
    OpenApiParameter("actor", str, description="user name"),
]


def _lead_audit(request: Request):
    single_values(request, not_blank=_NOT_BLANK)
    if not is_lead_anywhere(user=request.user):
        raise PermissionDenied("the audit log is for leads")
    return audit_list(
        user=request.user,
        site=request.query_params.get("site") or None,
        image_id=query_number(request, "image"),
        action=request.query_params.get("action") or None,
        actor=request.query_params.get("actor") or None,
    )


class AuditListApi(APIView):
    """The audit log of the sites you lead (leads only), newest first."""

    @extend_schema(
        parameters=_AUDIT_FILTERS + CURSOR_PARAMETERS,
        responses={200: cursor_page_schema("AuditLog", _AUDIT_FIELDS), **errors(400, 403)},
    )
    def get(self, request: Request) -> Response:
        return cursor_page(request, _lead_audit(request), ["-id"], _audit_rows)


class _Echo:
    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = ["id", "at", "actor", "action", "site", "image", "target", "before", "after"]


class AuditExportApi(APIView):
    """The same filtered audit log as CSV, streamed (leads only)."""

    @extend_schema(
        parameters=_AUDIT_FILTERS, responses={(200, "text/csv"): bytes, **errors(400, 403)}
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        events = _lead_audit(request)
        writer = SafeWriter(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for event in events.order_by("id").iterator(chunk_size=2000):
                data = audit_data(event=event)
                data["at"] = data["at"].isoformat()
                for column in ("before", "after"):
                    if data[column] is not None:
                        data[column] = json.dumps(data[column], sort_keys=True)
                yield writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit.csv"'
        return response
