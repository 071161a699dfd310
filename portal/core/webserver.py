"""The portal's web server: waitress, for `make run` (`run_portal`) and the Docker web image
alike (`manage.py serve_web`).

Why waitress rather than gunicorn's threads: waitress reads each request whole, headers and
body, in its event loop before a thread runs it, so a client that stalls mid-upload holds a
connection and never a thread, and `/healthz` and every page stay answered (gunicorn's
threads read the body inside the application: ten stalled uploads took them all). A client
that sends or reads nothing for PORTAL_CLIENT_TIMEOUT_S is disconnected. Bodies beyond 512 KiB
are spooled to unlinked temporary files in the staging folder's incoming/ (they hold identified
films: never in the system's /tmp), then parsed by the streaming upload handler as before."""

import logging
import multiprocessing.util
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from portal.core.proxies import trusted_networks

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def access_logged(app: WSGIApp, stream=None) -> WSGIApp:
    """One line per response on stdout, in the combined log format gunicorn wrote."""

    def logged(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, headers: list, exc_info=None):
            size = next((v for k, v in headers if k.lower() == "content-length"), "-")
            target = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                target += "?" + environ["QUERY_STRING"]
            line = '{} - - [{}] "{} {} {}" {} {} "{}" "{}"\n'.format(
                environ.get("REMOTE_ADDR", "-"),
                time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                environ.get("REQUEST_METHOD", "-"),
                target,
                environ.get("SERVER_PROTOCOL", "-"),
                status.split(" ", 1)[0],
                size,
                environ.get("HTTP_REFERER", "-"),
                environ.get("HTTP_USER_AGENT", "-"),
            )
            out = stream or sys.stdout
            out.write(line)
            out.flush()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return logged


def server_options(*, host: str, port: int, threads: int) -> dict:
    """waitress's settings, from the portal's (one place, read by the tests too)."""
    timeout = settings.PORTAL_CLIENT_TIMEOUT_S
    return {
        "host": host,
        "port": port,
        "threads": threads,
        # Idle clients are looked for every cleanup_interval: a few times per timeout.
        "channel_timeout": timeout,
        "cleanup_interval": max(1, min(30, timeout // 3)),
        "connection_limit": settings.PORTAL_WEB_CONNECTIONS,
        # poll(), not select(): select() fails past 1,024 descriptors.
        "asyncore_use_poll": True,
        "max_request_body_size": settings.PORTAL_MAX_REQUEST_BYTES,
        "recv_bytes": 256 * 1024,
        # X-Forwarded-* reach the portal, which believes them only from PORTAL_TRUSTED_PROXIES
        # (portal.core.proxies); waitress would otherwise drop them for every peer.
        "clear_untrusted_proxy_headers": False,
        "ident": "cxr-age",
    }


def serve(*, host: str, port: int, threads: int) -> None:
    """Run until SIGTERM or Ctrl-C."""
    from waitress.server import create_server

    trusted_networks()  # a bad PORTAL_TRUSTED_PROXIES stops the start, naming the entry
    spool = Path(settings.FILE_UPLOAD_TEMP_DIR)
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    # multiprocessing's own folder (the socket of ingest's fork server, for STOW-RS) stays in
    # the system's temporary folder: a socket's path may be 107 bytes at most, and staging's is
    # as deep as the data folder.
    multiprocessing.util.get_temp_dir()
    # waitress's request-body spool files are tempfile.TemporaryFile()s: in staging.
    tempfile.tempdir = str(spool)
    server = create_server(
        access_logged(get_wsgi_application()),
        **server_options(host=host, port=port, threads=threads),
    )
    logging.getLogger("portal").info(
        "Web server on http://%s:%s (%s threads, clients cut after %s s idle)",
        host,
        port,
        threads,
        settings.PORTAL_CLIENT_TIMEOUT_S,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
