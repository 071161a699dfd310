"""Sections that higher apps add to the Jobs page. The predictions area owns the page but may
not import the apps above it (DESIGN.md, "Apps depend one way"): each such app registers, from
its AppConfig.ready, a function that renders its own section for the request."""

from collections.abc import Callable

from django.http import HttpRequest
from django.utils.safestring import SafeString

# Returns `render_to_string(...)`: HTML its template escaped, marked safe.
Section = Callable[[HttpRequest], SafeString]
_SECTIONS: list[Section] = []


def register(section: Section) -> None:
    if section not in _SECTIONS:
        _SECTIONS.append(section)


def render_all(request: HttpRequest) -> list[SafeString]:
    """Each registered section's HTML (already escaped by its template), in registration order."""
    return [section(request) for section in _SECTIONS]
