"""The login page: Django's, with a form that refuses throttled attempts with a wait; and the
error answers: JSON under /api/, pages in the portal's frame that say what to do elsewhere."""

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import BadRequest, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from portal.core.login_throttle import login_wait_seconds


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed logins. Wait %(minutes)s minute(s) and try again.",
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if wait := login_wait_seconds(request=self.request, username=username):
            raise forms.ValidationError(
                self.error_messages["throttled"],
                code="throttled",
                params={"minutes": -(-wait // 60)},
            )
        return super().clean()


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "core/login.html"

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        if any(e.code == "throttled" for e in form.errors.as_data().get("__all__", [])):
            response.status_code = 429
        return response


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _reason(exception: Exception | None) -> str:
    """The message a view raised with (`PermissionDenied("the audit log is for leads")`), for
    the page; the resolver's 404 carries the URL patterns it tried, never shown."""
    args = getattr(exception, "args", ())
    return args[0] if args and isinstance(args[0], str) else ""


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path that matches no URL (`/api/images/abc/`): JSON like every other API answer,
    as the schema documents; a page in the portal's frame that says what to do otherwise."""
    if _api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", {"reason": _reason(exception)}, status=404)


# Errors Django answers itself (outside DRF's handler: a body over DATA_UPLOAD_MAX_MEMORY_SIZE,
# too many fields, an exception no view caught) answer JSON under /api/ too, `{"detail"}` as
# every API error does, never a traceback or a value from the request; pages keep HTML.
TOO_LARGE = (
    "the request body is larger than this portal accepts (send files as multipart "
    "form data, or fewer at a time)"
)
SERVER_ERROR = "the portal failed to answer this request; the error is logged, try again later"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A view's `BadRequest` (a query filter it cannot take) carries a reason that names the
    parameter: shown on a 400 page, or as the JSON detail. Other 400s (`SuspiciousOperation`:
    a bad Host header, too many fields, ...) keep a reason-less answer."""
    reason = str(exception) if isinstance(exception, BadRequest) else None
    if not _api(request):
        if reason:
            return render(request, "400.html", {"reason": reason}, status=400)
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"detail": TOO_LARGE}, status=413)
    return JsonResponse({"detail": reason or "Bad request."}, status=400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _api(request):
        return JsonResponse({"detail": "You do not have permission to do this."}, status=403)
    return render(request, "403.html", {"reason": _reason(exception)}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return JsonResponse({"detail": SERVER_ERROR}, status=500)
    # Rendered without the request (as Django does): its context processors query the
    # database, which may be what failed.
    return defaults.server_error(request, template_name="500.html")
