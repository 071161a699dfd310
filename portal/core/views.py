"""The login page: Django's, with a form that refuses throttled attempts with a wait; and the
not-found answer, in JSON under /api/."""

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
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


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path that matches no URL (`/api/images/abc/`): JSON like every other API answer,
    as the schema documents, rather than the HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
