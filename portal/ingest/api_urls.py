from django.urls import path

from portal.ingest import api

urlpatterns = [
    path("sites/", api.SiteListApi.as_view(), name="api-sites"),
    path("sites/<slug:slug>/uploads/", api.UploadCreateApi.as_view(), name="api-upload-create"),
    path("uploads/", api.UploadListApi.as_view(), name="api-uploads"),
    path("uploads/<int:upload_id>/", api.UploadDetailApi.as_view(), name="api-upload-detail"),
    path("uploads/<int:upload_id>/files/", api.UploadFilesApi.as_view(), name="api-upload-files"),
    path(
        "uploads/<int:upload_id>/submit/", api.UploadSubmitApi.as_view(), name="api-upload-submit"
    ),
]
