"""/dicomweb/: QIDO-RS, WADO-RS and STOW-RS (PS3.18), UIDs as the path segments."""

from django.urls import path, register_converter

from portal.pacs import dicomweb, views


class UidConverter:
    regex = r"[0-9]+(?:\.[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class FramesConverter:
    regex = r"[0-9]+(?:,[0-9]+)*"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UidConverter, "uid")
register_converter(FramesConverter, "frames")

STUDY = "studies/<uid:study>"
SERIES = f"{STUDY}/series/<uid:series>"
INSTANCE = f"{SERIES}/instances/<uid:sop>"

app_name = "dicomweb"
urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="studies"),
    path("series", views.SearchView.as_view(level=dicomweb.SERIES), name="series"),
    path("instances", views.SearchView.as_view(level=dicomweb.INSTANCE), name="instances"),
    path(f"{STUDY}/series", views.SearchView.as_view(level=dicomweb.SERIES), name="study-series"),
    path(
        f"{STUDY}/instances",
        views.SearchView.as_view(level=dicomweb.INSTANCE),
        name="study-instances",
    ),
    path(
        f"{SERIES}/instances",
        views.SearchView.as_view(level=dicomweb.INSTANCE),
        name="series-instances",
    ),
    path(STUDY, views.RetrieveView.as_view(), name="study"),
    path(f"{STUDY}/metadata", views.MetadataView.as_view(), name="study-metadata"),
    path(SERIES, views.RetrieveView.as_view(), name="series-retrieve"),
    path(f"{SERIES}/metadata", views.MetadataView.as_view(), name="series-metadata"),
    path(INSTANCE, views.RetrieveView.as_view(), name="instance"),
    path(f"{INSTANCE}/metadata", views.MetadataView.as_view(), name="instance-metadata"),
    path(f"{INSTANCE}/frames/<frames:frames>", views.FramesView.as_view(), name="frames"),
    path(f"{INSTANCE}/rendered", views.RenderedView.as_view(), name="rendered"),
    path(
        f"{INSTANCE}/frames/<frames:frames>/rendered",
        views.RenderedView.as_view(),
        name="frames-rendered",
    ),
]
