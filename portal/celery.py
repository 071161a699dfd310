"""The portal's Celery app: its own tasks run on the `default` queue."""

import os

from celery import Celery

# Beat and `celery -A portal` start here (`portal` itself sets the umask and quiets pydicom;
# settings' LOGGING_CONFIG quiets it again once Django configures logging).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
