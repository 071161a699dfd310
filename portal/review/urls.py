from django.urls import path

from portal.review import views

app_name = "review"
urlpatterns = [
    path("images/", views.image_list, name="image-list"),
    path("images/<int:image_id>/", views.image_view, name="image"),
    path("review/", views.queue_page, name="queue"),
    path("review/next/", views.queue_next, name="queue-next"),
    path("review/disputes/", views.disputes_page, name="disputes"),
    path("audit/", views.audit_page, name="audit"),
    path(
        "review/sites/<slug:slug>/blind-reading/",
        views.site_blind_reading,
        name="site-blind-reading",
    ),
]
