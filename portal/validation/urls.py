from django.urls import path

from portal.validation import views

app_name = "validation"
urlpatterns = [
    path("", views.set_list, name="list"),
    # Two segments: a set may be named "import".
    path("import/new/", views.set_import, name="import"),
    path("<slug:name>/", views.set_detail, name="detail"),
    path("<slug:name>/freeze/", views.set_freeze, name="freeze"),
    path("<slug:name>/versions/<int:number>/export/", views.set_export, name="export"),
]
