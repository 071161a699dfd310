"""The portal's Celery app: its own tasks run on the `default` queue."""

import os

from celery import Celery

from inference_worker import quiet_pydicom

# Files the workers and beat make (stored images, exports, reports) are the service user's
# alone; beat and `celery -A portal` start here, and so does every process importing `portal`.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# pydicom's warnings and log messages (they quote paths) reach no log, from the first import on:
# settings' LOGGING_CONFIG does it again once Django configures logging.
quiet_pydicom.install()

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
