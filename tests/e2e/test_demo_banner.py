"""Issue 17 item 7: `run_portal` on a fresh data folder shows the demo model's training banner
from the first page it serves, with the minutes left, and the banner moves on without a
reload (its script polls `GET /api/status/demo-model/`). The real trainer runs: the test
stops everything with Ctrl-C once the banner has moved twice."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
from playwright.sync_api import Browser, expect

from portal.core.processes import free_port
from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MINUTES_LEFT = re.compile(r"; about \d+ minutes? left")
# The trainer imports PyTorch, then makes phantoms: slow on a busy machine.
MOVES_WITHIN_MS = 240_000


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_demo_banner_shows_minutes_left_from_the_first_page_and_moves_without_reload(
    browser: Browser, tmp_path
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["PORTAL_DATA_DIR"] = str(tmp_path)  # a fresh data folder: no demo model yet
    env["PORTAL_DICOM_PORT"] = str(free_port())  # the DICOM receiver's, free as the web one
    for step in (["migrate", "-v0"], ["collectstatic", "--noinput", "-v0"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True)
    log = (tmp_path / "run_portal.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_portal", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    family: list[psutil.Process] = []
    try:
        wait_for(lambda: healthy(port), timeout_s=120, what="the web server")
        page = browser.new_page()
        first = page.goto(f"http://127.0.0.1:{port}/accounts/login/")
        # In the page as served (not added later by a script), with the minutes left.
        assert 'id="demo-training"' in first.text()
        banner = page.locator("#demo-training")
        expect(banner).to_have_text(re.compile(r"^Demo model: .*" + MINUTES_LEFT.pattern))
        page.evaluate("document.body.dataset.notReloaded = 'yes'")

        # The trainer's stages reach the open page: phantoms made, counted as they are made.
        expect(banner).to_have_attribute("data-state", "phantoms", timeout=MOVES_WITHIN_MS)
        expect(banner).to_have_text(re.compile(r"making phantoms, [\d,]+ of 3,000; about \d+"))
        counted = banner.text_content()
        expect(banner).not_to_have_text(counted, timeout=MOVES_WITHIN_MS)
        expect(banner).to_have_text(MINUTES_LEFT)
        assert page.evaluate("document.body.dataset.notReloaded") == "yes"
        page.close()

        family = psutil.Process(proc.pid).children(recursive=True)
        assert any("inference_worker.demo" in " ".join(p.cmdline()) for p in family)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)  # as test_first_run: each group gets 20 s to stop, then SIGKILL
        _, alive = psutil.wait_procs(family, timeout=30)
        assert alive == []
    finally:
        if proc.poll() is None:  # the test failed: leave no process behind
            family = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()
        log.close()
        print((tmp_path / "run_portal.log").read_text(errors="replace")[-4000:])
