"""The CXR-Age portal: a Django project with one app per domain area (see DESIGN.md).

What every process importing `portal` needs, the ingest workers' fork server included (it
imports `portal.ingest.prepare` and nothing of Django or Celery): files and folders it makes are
the service user's alone, and pydicom's warnings and log messages (they quote paths) reach no
log from the first import on. The Celery app (`portal.celery`) is imported where it is used:
`celery -A portal` finds it by itself, and a Django process imports it with its first message
(`portal.core.outbox`), so that neither the fork server nor a command that sends one message
at its end pays for Celery's import before its work.
"""

import os

from inference_worker import quiet_pydicom

os.umask(0o077)
quiet_pydicom.install()
