"""Content-Security-Policy on every response (Django 5.2 has no built-in CSP; 6.0 does).

The viewer decodes DICOM in module web workers with WebAssembly: `'wasm-unsafe-eval'` allows
compiling WebAssembly and nothing else that `'unsafe-eval'` would; workers load from the
portal itself or from blob: URLs."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def csp_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([name, *sources]) for name, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    """Sets settings.CONTENT_SECURITY_POLICY unless the view set its own header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.header = csp_header(settings.CONTENT_SECURITY_POLICY)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.header)
        return response
