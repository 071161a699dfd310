"""Decisions in the admin, to look at: a review is never changed or deleted, there or anywhere."""

from django.contrib import admin

from portal.core.admin import ReadOnlyAdmin
from portal.review.models import Review


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "image", "reviewer", "decision", "kind", "age_days", "created_at"]
    list_filter = ["decision", "kind", "image__site"]
    list_select_related = ["image", "reviewer"]
    search_fields = ["reviewer__username"]
