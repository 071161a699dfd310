"""The CXR-Age portal: a Django project with one app per domain area (see DESIGN.md).

What every process importing `portal` needs, the ingest workers' fork server included (it
imports `portal.ingest.prepare` and nothing of Django or Celery): files and folders it makes are
the service user's alone, and pydicom's warnings and log messages (they quote paths) reach no
log from the first import on. The Celery app (`portal.celery`, which `celery -A portal` finds
by itself) is loaded by the core app when Django starts, so that the fork server does not pay
a tenth of a second for Celery's import.
"""

import os

from inference_worker import quiet_pydicom

os.umask(0o077)
quiet_pydicom.install()
