"""Query strings the database cannot take are refused before any view reads them."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

NUL_REASON = "a query parameter holds a NUL character, which no value here can contain"


class RefuseNulCharacters:
    """PostgreSQL text cannot hold NUL (SQLite can): a filter such as `?action=%00` would be a
    500 on one database and an empty page on the other. Answered 400 on both, for every page
    and endpoint, so that no view has to remember it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return JsonResponse({"detail": NUL_REASON}, status=400)
        return self.get_response(request)
