from django.urls import path

from portal.predictions import views

app_name = "predictions"
urlpatterns = [path("", views.job_list, name="job-list")]
