"""Top-level URLs: the web pages, the REST API under /api/ and its OpenAPI schema."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.core.status_api import DemoTrainingStatusApi
from portal.core.views import LoginView
from portal.review import views as review_views

admin.autodiscover()  # here, not at Django's start (`portal.accounts.admin_config`)

urlpatterns = [
    path("", review_views.dashboard, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("uploads/", include("portal.ingest.urls")),
    path("jobs/", include("portal.predictions.urls")),
    path("jobs/training/", include("portal.learning.urls")),
    path("", include("portal.review.urls")),
    path("team/", include("portal.accounts.urls")),
    path("validation-sets/", include("portal.validation.urls")),
    path("reports/", include("portal.reports.urls")),
    path("api/", include("portal.ingest.api_urls")),
    path("api/", include("portal.predictions.api_urls")),
    path("api/", include("portal.review.api_urls")),
    path("api/", include("portal.validation.api_urls")),
    path("api/", include("portal.reports.api_urls")),
    path("api/", include("portal.learning.api_urls")),
    path("api/status/demo-model/", DemoTrainingStatusApi.as_view(), name="api-demo-model-status"),
    path("dicomweb/", include("portal.pacs.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]
# JSON for an /api/ path that matches nothing (the schema documents 404 as JSON), and for
# the errors Django answers itself under /api/ (docs/reliability.md, "When the broker is down").
handler400 = "portal.core.views.bad_request"
handler403 = "portal.core.views.permission_denied"
handler404 = "portal.core.views.not_found"
handler500 = "portal.core.views.server_error"
