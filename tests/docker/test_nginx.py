"""docker/nginx.conf, the compose stack's front door, run by a real nginx (where one is
installed) in front of a real `serve_web`: its configuration is valid, it answers `/healthz`
within a second while 20 uploads stall, and it cuts the stalled clients after its body timeout.
The file is run as it is but for the addresses and folders a test machine has."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from portal.accounts.tokens import token_create
from portal.core.processes import free_port, stop_process_groups
from tests.conftest import ROOT, wait_for
from tests.portal.core.test_webserver import _closed_by_server, _stalled_upload, serve_web

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed"),
]
BODY_TIMEOUT_S = 3


def _local_config(tmp: Path, *, listen: int, upstream: str) -> Path:
    text = (ROOT / "docker" / "nginx.conf").read_text()
    assert "client_body_temp_path /staging/incoming;" in text
    assert "proxy_request_buffering on;" in text
    text = text.replace("server web:8000;", f"server {upstream};")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("/tmp/", f"{tmp}/")
    text = text.replace("/staging/incoming", str(tmp / "incoming"))
    text = re.sub(
        r"client_(body|header)_timeout 60s;", rf"client_\1_timeout {BODY_TIMEOUT_S}s;", text
    )
    if os.geteuid() == 0:  # workers would otherwise be `nobody`, locked out of the test's folders
        text = "user root;\n" + text
    (tmp / "incoming").mkdir(mode=0o700)
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


def test_nginx_in_front_answers_while_20_uploads_stall_and_cuts_them(
    data_dir, site, admin_user, tmp_path
) -> None:
    _, token = token_create(actor=None, user=admin_user)
    with serve_web(data_dir) as upstream:
        port = free_port()
        conf = _local_config(tmp_path, listen=port, upstream=upstream.removeprefix("http://"))
        checked = subprocess.run(
            [NGINX, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        url = f"http://127.0.0.1:{port}"
        stalled = []
        try:

            def up() -> bool:
                assert proc.poll() is None, "nginx stopped"
                try:
                    return requests.get(f"{url}/healthz", timeout=2).status_code == 200
                except requests.RequestException:
                    return False

            wait_for(up, timeout_s=30, what="nginx")
            stalled = [_stalled_upload(port, token) for _ in range(20)]
            started = time.monotonic()
            for _ in range(3):
                t0 = time.monotonic()
                assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
                assert time.monotonic() - t0 < 1.0
                time.sleep(0.3)
            for sock in stalled:
                sock.settimeout(max(0.1, started + BODY_TIMEOUT_S + 10 - time.monotonic()))
                assert _closed_by_server(sock)
        finally:
            for sock in stalled:
                sock.close()
            stop_process_groups([proc], timeout_s=10)
            print(proc.stdout.read().decode(errors="replace")[-3000:])
