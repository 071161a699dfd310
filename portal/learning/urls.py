from django.urls import path

from portal.learning import views

app_name = "learning"
urlpatterns = [
    path("<int:job_id>/", views.training_job_detail, name="detail"),
    path("<int:job_id>/activate/", views.training_job_activate, name="activate"),
]
