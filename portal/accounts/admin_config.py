"""The admin app on the portal's own site; a module of its own, because INSTALLED_APPS imports
it before any model is ready (the site itself, in `admin_site`, is loaded later)."""

from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    default_site = "portal.accounts.admin_site.PortalAdminSite"
