from django.urls import path

from portal.accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.team, name="team"),
    path("<int:membership_id>/revoke/", views.revoke, name="revoke"),
]
