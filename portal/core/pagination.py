"""Keyset (cursor) pagination for every list: a page is found by the sort key of its edge,
never by an offset, so page 2,000 costs what page 1 costs and nothing counts the table."""

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import BadRequest
from django.db.models import Q, QuerySet
from django.http import Http404

from portal.core.numbers import whole_number

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class CursorError(ValueError):
    """A cursor or limit that cannot be read (HTTP 400)."""


@dataclass
class Page:
    items: list
    next_cursor: str | None
    previous_cursor: str | None


@functools.lru_cache(maxsize=4)
def _sealer(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"cursor:{secret}".encode()).digest()))


# A cursor is sealed (encrypted and authenticated with a key derived from SECRET_KEY): it
# carries the sort key of its edge row, and the queue's is the score, which blind reading hides
# (docs/review.md, Blind reading); sealed, a cursor can be neither read nor forged to probe values.
def _encode(values: list, forward: bool) -> str:
    raw = json.dumps({"v": values, "f": forward}, separators=(",", ":")).encode()
    return _sealer(settings.SECRET_KEY).encrypt(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[list, bool]:
    try:
        token = (cursor + "=" * (-len(cursor) % 4)).encode()
        data = json.loads(_sealer(settings.SECRET_KEY).decrypt(token))
        return list(data["v"]), bool(data["f"])
    except (InvalidToken, ValueError, KeyError, TypeError) as exc:
        raise CursorError("invalid cursor") from exc


def _after(keys: list[str], values: list) -> Q:
    """Rows strictly after `values` in the order of `keys` ("-score", "-id", ...). The first
    key's bound is stated on its own too, so that the database seeks its index."""
    names = [k.lstrip("-") for k in keys]
    ops = ["lt" if k.startswith("-") else "gt" for k in keys]
    condition = Q(pk__in=[])
    for i in range(len(keys)):
        equal = {names[j]: values[j] for j in range(i)}
        condition |= Q(**equal, **{f"{names[i]}__{ops[i]}": values[i]})
    inclusive = "lte" if ops[0] == "lt" else "gte"
    return Q(**{f"{names[0]}__{inclusive}": values[0]}) & condition


def _values(item, keys: list[str]) -> list:
    return [getattr(item, k.lstrip("-")) for k in keys]


def paginate(queryset: QuerySet, *, keys: list[str], cursor: str | None, limit: int) -> Page:
    """One page of `queryset` in the order of `keys` (the last key must be unique)."""
    forward = True
    if cursor:
        values, forward = _decode(cursor)
        if len(values) != len(keys):
            raise CursorError("invalid cursor")
        flipped = keys if forward else [k[1:] if k.startswith("-") else f"-{k}" for k in keys]
        queryset = queryset.filter(_after(flipped, values)).order_by(*flipped)
    else:
        queryset = queryset.order_by(*keys)
    rows = list(queryset[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if not forward:
        rows.reverse()
    has_next = more if forward else bool(cursor)
    has_previous = bool(cursor) if forward else more
    return Page(
        items=rows,
        next_cursor=_encode(_values(rows[-1], keys), True) if rows and has_next else None,
        previous_cursor=_encode(_values(rows[0], keys), False) if rows and has_previous else None,
    )


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    limit = whole_number(raw)
    if limit is None or limit < 1:
        raise CursorError("limit must be a positive whole number")
    return min(limit, MAX_LIMIT)


def page_links(request, page: Page) -> tuple[str | None, str | None]:
    """Absolute URLs of the next and previous pages, keeping the request's other parameters."""

    def link(cursor: str | None) -> str | None:
        if cursor is None:
            return None
        params = {k: v for k, v in request.GET.items() if k != "cursor"}
        params["cursor"] = cursor
        return request.build_absolute_uri(request.path) + "?" + urlencode(params)

    return link(page.next_cursor), link(page.previous_cursor)


def view_page(
    request, queryset: QuerySet, *, keys: list[str]
) -> tuple[Page, str | None, str | None]:
    """For a web page: the page of `queryset` that the request's `cursor` and `limit` ask for,
    with its next and previous links; a limit that cannot be read is a 400 page naming it, a
    cursor that cannot be read (no page of this list) a 404."""
    try:
        limit = parse_limit(request.GET.get("limit"))
    except CursorError as exc:
        raise BadRequest(str(exc)) from exc
    try:
        page = paginate(queryset, keys=keys, cursor=request.GET.get("cursor"), limit=limit)
    except CursorError as exc:
        raise Http404(str(exc)) from exc
    return page, *page_links(request, page)
