from django.urls import path

from portal.reports import api as reports

urlpatterns = [
    path("reports/", reports.ReportCreateApi.as_view(), name="api-reports"),
    path("reports/<int:report_id>/", reports.ReportDetailApi.as_view(), name="api-report"),
    path(
        "reports/<int:report_id>/download/<str:fmt>/",
        reports.ReportDownloadApi.as_view(),
        name="api-report-download",
    ),
]
