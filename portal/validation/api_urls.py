from django.urls import path

from portal.validation import api

base = "validation-sets/<slug:name>/"
version = base + "versions/<int:number>/"
urlpatterns = [
    path("validation-sets/", api.ValidationSetListCreateApi.as_view(), name="api-validation-sets"),
    # Not under validation-sets/: "import" is a valid set name.
    path(
        "validation-set-imports/",
        api.ValidationSetImportApi.as_view(),
        name="api-validation-set-import",
    ),
    path(base, api.ValidationSetDetailApi.as_view(), name="api-validation-set"),
    path(base + "freeze/", api.ValidationSetFreezeApi.as_view(), name="api-validation-set-freeze"),
    path(base + "diff/", api.ValidationSetDiffApi.as_view(), name="api-validation-set-diff"),
    path(version, api.ValidationSetVersionApi.as_view(), name="api-validation-set-version"),
    path(version + "items/", api.ValidationSetItemsApi.as_view(), name="api-validation-set-items"),
    path(
        version + "export/", api.ValidationSetExportApi.as_view(), name="api-validation-set-export"
    ),
    path(
        version + "export/download/",
        api.ValidationSetExportDownloadApi.as_view(),
        name="api-validation-set-export-download",
    ),
]
