#!/usr/bin/env python
"""Django's command-line entry point for the CXR-Age portal."""

import os
import sys


def run_and_leave(argv: list[str]) -> None:
    """Run the command, close its connections, run the exit handlers (the fork server's
    warm-up, logging's flush), then end the process without the interpreter's teardown:
    freeing every object of Django, pydicom and numpy one by one takes a quarter of a second
    that nobody needs, the system taking the memory back at once. For `ingest`, whose
    start-to-exit time is its rate (bench/ingest.py). An unexpected exception still ends the
    usual way, with its traceback."""
    import atexit  # noqa: PLC0415

    from django.core.management import execute_from_command_line  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    try:
        execute_from_command_line(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    connections.close_all()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    if sys.argv[1:2] == ["ingest"] and not helping:
        run_and_leave(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
