from django.urls import path

from portal.review import api, api_audit, api_disputes

urlpatterns = [
    path("images/", api.ImageListApi.as_view(), name="api-images"),
    path("images/<int:image_id>/", api.ImageDetailApi.as_view(), name="api-image-detail"),
    path("images/<int:image_id>/dicom/", api.ImageDicomApi.as_view(), name="api-image-dicom"),
    path("images/<int:image_id>/preview/", api.ImagePreviewApi.as_view(), name="api-image-preview"),
    path("images/<int:image_id>/heatmap/", api.ImageHeatmapApi.as_view(), name="api-image-heatmap"),
    path("images/<int:image_id>/reviews/", api.ImageReviewsApi.as_view(), name="api-image-reviews"),
    path("images/<int:image_id>/audit/", api_audit.ImageAuditApi.as_view(), name="api-image-audit"),
    path("review/queue/", api.QueueApi.as_view(), name="api-review-queue"),
    path("review/queue/next/", api.QueueNextApi.as_view(), name="api-review-queue-next"),
    path("review/disputes/", api_disputes.DisputeListApi.as_view(), name="api-review-disputes"),
    path("audit/", api_audit.AuditListApi.as_view(), name="api-audit"),
    path("audit/export/", api_audit.AuditExportApi.as_view(), name="api-audit-export"),
]
