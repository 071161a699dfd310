from django.urls import path

from portal.predictions import api

urlpatterns = [
    path("jobs/", api.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="api-job-detail"),
    path("predictions/", api.PredictionListApi.as_view(), name="api-predictions"),
    path("images/<int:image_id>/", api.ImageDetailApi.as_view(), name="api-image-detail"),
    path("images/<int:image_id>/dicom/", api.ImageDicomApi.as_view(), name="api-image-dicom"),
    path("images/<int:image_id>/heatmap/", api.ImageHeatmapApi.as_view(), name="api-image-heatmap"),
]
