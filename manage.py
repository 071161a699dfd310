#!/usr/bin/env python
"""Django's command-line entry point for the CXR-Age portal."""

import os
import sys

if __name__ == "__main__":
    # Files and folders the portal makes (database, secret key, staging, stored files) are
    # the service user's alone; see docs/deploy.md.
    os.umask(0o077)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    helping = {"-h", "--help"} & set(sys.argv)
    if sys.argv[1:2] in (["ingest"], ["serve_web"], ["dicom_listen"]) and not helping:
        # The commands that ingest files (the web server takes STOW-RS and uploads): ingest's
        # worker processes' fork server imports pydicom on the other core while Django starts
        # on this one, and no first upload waits for it (portal/ingest/workers.py).
        from portal.ingest import workers

        workers.start(wait=False)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
