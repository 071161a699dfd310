from django.urls import path

from portal.reports import views

app_name = "reports"
urlpatterns = [
    path("new/", views.report_new, name="new"),
    path("<int:report_id>/", views.report_detail, name="detail"),
]
