"""`make run`'s last step: Redis, workers, beat and web server start together and stop on
Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from portal.core.processes import free_port
from tests.conftest import ROOT, run_portal, wait_for

pytestmark = pytest.mark.slow


def test_run_portal_serves_the_login_page_and_stops_everything_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["PORTAL_DATA_DIR"] = str(tmp_path)
    env["PORTAL_DICOM_PORT"] = str(dicom_port := free_port())
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    proc = run_portal(port, env)
    try:

        def login_page_is_up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/") as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(login_page_is_up, timeout_s=60, what="the web server")
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "redis-server" in names
        assert "celery" in names
        assert "-A portal beat" in names  # the periodic stalled-jobs sweep
        assert "serve_web" in names  # waitress (portal.core.webserver)
        assert "inference_worker" in names
        assert "dicom_listen" in names  # the DICOM receiver (portal.pacs)
        echo = subprocess.run(
            ["echoscu", "-aet", "ANYONE", "-aec", "NO_SITE", "127.0.0.1", str(dicom_port)],
            capture_output=True,
            text=True,
        )
        assert "Called AE Title Not Recognized" in echo.stderr  # it answers, and checks titles
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == []
    finally:
        if proc.poll() is None:  # the test failed: leave no process behind
            leftovers = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            for child in leftovers:
                child.kill()
            print(proc.stdout.read().decode(errors="replace")[-5000:])


def test_pages_show_the_demo_model_training_progress(client, admin_user, data_dir):
    folder = data_dir / "models" / "demo"
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text(
        json.dumps(
            {
                "state": "training",
                "epoch": 3,
                "epochs": 15,
                "eta_seconds": 120,
                "best_val_mae_months": 22.5,
            }
        )
    )
    client.force_login(admin_user)
    page = client.get("/uploads/new/").content.decode()
    assert "epoch 3 of 15" in page
    assert "22.5 months" in page
    (folder / "progress.json").write_text(json.dumps({"state": "done"}))
    assert "demo-training" not in client.get("/uploads/new/").content.decode()
