"""Pieces every REST area shares: a cursor page as a response, its schema, and the error
responses each operation documents."""

from collections.abc import Callable

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from portal.core.numbers import MAX_WHOLE, whole_number
from portal.core.pagination import CursorError, page_links, paginate, parse_limit

CURSOR_PARAMETERS = [
    OpenApiParameter("cursor", str, description="from `next` or `previous`"),
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1},
        description="page size (default 50; more than 200 gives 200)",
    ),
]
# A whole number, as an id or a count of days is in a query string (64 bits at most).
WHOLE_NUMBER = {"type": "integer", "minimum": 0, "maximum": MAX_WHOLE}

ERROR = inline_serializer("Error", {"detail": serializers.CharField()})
_DESCRIPTIONS = {
    400: "invalid input: `{field: [messages]}` or `{detail}`",
    403: "not allowed for your role",
    404: "not found, or not on one of your sites",
    409: "conflicts with the current state",
}


def errors(*codes: int) -> dict:
    """Responses for `extend_schema(responses=...)`: 400 names the fields it refuses, the
    others carry a `detail`."""
    return {
        code: OpenApiResponse(
            OpenApiTypes.OBJECT if code == 400 else ERROR, description=_DESCRIPTIONS[code]
        )
        for code in codes
    }


def single_values(
    request: Request, *, names: tuple[str, ...] | None = None, not_blank: tuple[str, ...] = ()
) -> None:
    """Each query parameter (of `names`, default all) at most once: `?image=1&image=2` is
    refused (400), never read as its last value; and those of `not_blank` (numbers, choices)
    never empty: the API refuses `?status=` rather than reading it as no filter."""
    given = request.query_params
    problems = {
        k: ["give this parameter once"]
        for k, v in given.lists()
        if len(v) > 1 and (names is None or k in names)
    }
    problems.update({k: ["may not be blank"] for k in not_blank if given.get(k, None) == ""})
    if problems:
        raise ValidationError(dict(sorted(problems.items())))


def query_number(request: Request, name: str) -> int | None:
    """The whole-number query parameter `name` (None when absent); 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = whole_number(raw)
    if value is None:
        raise ValidationError({name: [f"a whole number from 0 to {MAX_WHOLE}"]})
    return value


def cursor_page(
    request: Request, queryset, keys: list[str], render: Callable[[list], list[dict]]
) -> Response:
    """`{"next", "previous", "results"}` for one page of `queryset` in the order of `keys`."""
    single_values(request, not_blank=("limit",))
    try:
        limit = parse_limit(request.query_params.get("limit"))
    except CursorError as exc:
        raise ValidationError({"limit": [str(exc)]}) from exc
    try:
        page = paginate(queryset, keys=keys, cursor=request.query_params.get("cursor"), limit=limit)
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


class TextField(serializers.CharField):
    """A CharField that takes only text: DRF's turns `0` or `true` into a string, which
    accepts a body the schema says is wrong (found by the fuzz test)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
