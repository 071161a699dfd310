from django.urls import path

from portal.learning import api

urlpatterns = [
    path("training-jobs/", api.TrainingJobListCreateApi.as_view(), name="api-training-jobs"),
    path(
        "training-jobs/<int:job_id>/",
        api.TrainingJobDetailApi.as_view(),
        name="api-training-job",
    ),
    path(
        "training-jobs/<int:job_id>/activate/",
        api.TrainingJobActivateApi.as_view(),
        name="api-training-job-activate",
    ),
]
