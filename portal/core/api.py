"""Pieces every REST area shares: a cursor page as a response, and its schema."""

from collections.abc import Callable

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portal.core.pagination import CursorError, page_links, paginate_query

CURSOR_PARAMETERS = [
    OpenApiParameter("cursor", str, description="from `next` or `previous`"),
    OpenApiParameter("limit", int, description="page size (default 50, at most 200)"),
]


def cursor_page(
    request: Request, queryset, keys: list[str], render: Callable[[list], list[dict]]
) -> Response:
    """`{"next", "previous", "results"}` for one page of `queryset` in the order of `keys`."""
    try:
        page = paginate_query(queryset, keys=keys, query=request.query_params)
    except CursorError as exc:
        raise ValidationError({"cursor": [str(exc)]}) from exc
    next_url, previous_url = page_links(request, page)
    return Response({"next": next_url, "previous": previous_url, "results": render(page.items)})


def cursor_page_schema(name: str, fields: dict) -> serializers.Serializer:
    return inline_serializer(
        name,
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": inline_serializer(f"{name}Item", fields, many=True),
        },
    )
