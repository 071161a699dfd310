"""The leads' adjudication list over REST: every disputed case of the sites you lead, reader 1
and reader 2 side by side. Adjudicate with `POST /api/images/{id}/reviews/` as ever."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.core.api import (
    CURSOR_PARAMETERS,
    cursor_page,
    cursor_page_schema,
    errors,
    single_values,
)
from portal.ingest.models import ReviewStatus
from portal.review import disputes
from portal.review.api import _REVIEW_FIELDS


def _read(name: str):
    return inline_serializer(name, _REVIEW_FIELDS, allow_null=True)


_DISPUTE_ROW = {
    "image": serializers.IntegerField(),
    "site": serializers.CharField(),
    "sex": serializers.CharField(),
    "recorded_age_days": serializers.IntegerField(),
    "status": serializers.ChoiceField(choices=ReviewStatus.choices),
    "revision": serializers.IntegerField(help_text="decide on this revision"),
    "disputed_at": serializers.DateTimeField(
        allow_null=True, help_text="when the second read made the case disputed"
    ),
    "lease": inline_serializer(
        "DisputeLease",
        {"holder": serializers.CharField(), "expires_at": serializers.DateTimeField()},
        allow_null=True,
    ),
    "first_read": _read("DisputeFirstRead"),
    "second_read": _read("DisputeSecondRead"),
}


class DisputeListApi(APIView):
    """Disputed cases of the sites you lead (leads only), oldest first, whatever their score:
    reader 1's and reader 2's decisions side by side, no model output (blind reading)."""

    @extend_schema(
        parameters=[OpenApiParameter("site", str), *CURSOR_PARAMETERS],
        responses={200: cursor_page_schema("DisputeList", _DISPUTE_ROW), **errors(400, 403)},
    )
    def get(self, request: Request) -> Response:
        single_values(request, names=("site",))
        if not disputes.may_adjudicate(user=request.user):
            raise PermissionDenied("the adjudication list is for leads")
        images = disputes.dispute_list(
            user=request.user, site=request.query_params.get("site") or None
        )
        return cursor_page(request, images, disputes.ORDER, disputes.dispute_rows)
