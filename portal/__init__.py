"""The CXR-Age portal: a Django project with one app per domain area (see DESIGN.md)."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
