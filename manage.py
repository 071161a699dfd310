#!/usr/bin/env python
"""Django's command-line entry point for the CXR-Age portal."""

import os
import sys

if __name__ == "__main__":
    # Files and folders the portal makes (database, secret key, staging, stored files) are
    # the service user's alone; see docs/deploy.md.
    os.umask(0o077)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
