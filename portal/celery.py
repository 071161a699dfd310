"""The portal's Celery app: its own tasks run on the `default` queue."""

import os

from celery import Celery

# Files the workers and beat make (stored images, exports, reports) are the service user's
# alone; beat and `celery -A portal` start here, and so does every process importing `portal`.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
