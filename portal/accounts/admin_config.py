"""The admin app on the portal's own site; a module of its own, because INSTALLED_APPS imports
it before any model is ready (the site itself, in `admin_site`, is loaded later).

A `SimpleAdminConfig`: the apps' admin modules are discovered by the URL configuration
(`portal.urls`), which only the web server and tests load, rather than at every start of
Django. They import most of the portal's services, which every management command, every
Celery worker and `manage.py ingest` (whose start is part of its rate) would otherwise import
for nothing: about a third of Django's start.
"""

from django.contrib.admin.apps import SimpleAdminConfig


class PortalAdminConfig(SimpleAdminConfig):
    default_site = "portal.accounts.admin_site.PortalAdminSite"
