"""WSGI entry point for any WSGI server (the portal's own: `manage.py serve_web`)."""

import os

from django.core.wsgi import get_wsgi_application

# Files the web server makes (uploads, staging, stored images) are the service user's alone.
os.umask(0o077)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()
