from django.urls import path

from portal.predictions import api

urlpatterns = [
    path("jobs/", api.JobListCreateApi.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>/", api.JobDetailApi.as_view(), name="api-job-detail"),
    path("predictions/", api.PredictionListApi.as_view(), name="api-predictions"),
]
