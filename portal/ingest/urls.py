from django.urls import path

from portal.ingest import views

app_name = "ingest"
urlpatterns = [
    path("", views.upload_list, name="upload-list"),
    path("new/", views.upload_new, name="upload-new"),
    path("<int:upload_id>/", views.upload_detail, name="upload-detail"),
]
