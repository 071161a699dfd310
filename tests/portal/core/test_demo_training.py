"""The demo model's training banner (issue 17): on every page from the moment `run_portal`
starts, with the minutes left, and the same words from `GET /api/status/demo-model/` for the
page's script that updates it without a reload."""

import datetime as dt
import json
import re

from django.core.management import call_command

from inference_worker import progress
from portal.operations.management.commands.run_portal import Command as RunPortal

STATUS_URL = "/api/status/demo-model/"


def write_progress(data_dir, **state):
    folder = data_dir / "models" / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / progress.PROGRESS).write_text(json.dumps(state))


def test_run_portal_records_starting_before_anything_runs_so_the_first_page_has_the_banner(
    client, data_dir, db
):
    RunPortal._demo_model_starting()

    page = client.get("/accounts/login/").content.decode()  # anonymous: the first page there is
    assert 'id="demo-training"' in page
    assert 'data-state="starting"' in page
    left = re.search(r"Demo model: starting; about (\d+) minutes left\.", page)
    assert int(left[1]) in (progress.demo_expected_minutes() - 1, progress.demo_expected_minutes())
    assert "banner.js" in page


def test_run_portal_leaves_a_trained_demo_model_alone(data_dir):
    write_progress(data_dir, state="done", epochs=15)

    RunPortal._demo_model_starting()

    assert progress.read(data_dir / "models" / "demo")["state"] == "done"


def test_the_status_api_answers_anyone_with_the_banners_words(client, data_dir, db):
    assert client.get(STATUS_URL).json() == {"state": None, "minutes_left": None, "text": None}

    now = dt.datetime.now(dt.UTC).isoformat()
    write_progress(
        data_dir, state="phantoms", done=600, total=3000, images=3000, epochs=15, started_at=now
    )
    body = client.get(STATUS_URL).json()
    assert body["state"] == "phantoms"
    assert body["minutes_left"] >= 1
    assert body["text"].startswith("Demo model: making phantoms, 600 of 3,000; about ")

    write_progress(data_dir, state="training", epoch=4, epochs=15, eta_seconds=61, updated_at=now)
    body = client.get(STATUS_URL).json()
    assert body["minutes_left"] == 2  # 61 s, rounded up
    assert "training, epoch 4 of 15; about 2 minutes left" in body["text"]

    write_progress(data_dir, state="done")
    assert client.get(STATUS_URL).json()["text"].startswith("Demo model: trained")


def test_a_failed_training_says_where_to_look_and_a_trained_model_has_no_banner(
    client, admin_user, data_dir
):
    client.force_login(admin_user)
    write_progress(data_dir, state="failed", exit_status=1)
    page = client.get("/jobs/").content.decode()
    assert "training failed (exit status 1); see models/demo/training.log" in page
    assert 'data-state="failed"' in page

    write_progress(data_dir, state="done")
    assert "demo-training" not in client.get("/jobs/").content.decode()


def test_the_status_api_is_in_the_schema():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
