"""An admin uploads a folder in the browser and reads its report."""

import re

import pytest
from playwright.sync_api import Browser, expect

from portal.ingest.models import Image
from portal.predictions import services
from tests.dicom_files import make_dicom
from tests.portal.predictions.test_jobs import make_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_admin_uploads_a_folder_and_sees_progress_and_the_report(
    browser: Browser, live_server, admin_user, site, default_worker, tmp_path
):
    folder = tmp_path / "north-export"
    # Accepted, with a warning: the dates say 4 years 10 months.
    make_dicom(folder / "a.dcm", sex="M", patient_age="015Y")
    make_dicom(folder / "series2" / "b.dcm", birth_date=None, patient_age="006M")
    make_dicom(folder / "series2" / "ct.dcm", modality="CT")

    page = browser.new_page()
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "lead-password-123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your sites")
    page.click("text=New upload")
    expect(page.locator("h1")).to_have_text("New upload")

    expect(page.locator("#upload-app")).to_have_attribute("data-ready", "true")
    page.select_option("#site", site.slug)
    page.set_input_files("#pick-folder", str(folder))
    expect(page.locator("#selection")).to_contain_text("3 files chosen")
    page.click("#start")

    expect(page.locator("#phase")).to_have_text(re.compile(r"Upload \d+ done"), timeout=90_000)
    expect(page.locator("#counts")).to_have_text(
        "3 of 3 files processed: 2 accepted, 0 duplicates, 1 rejected"
    )
    rows = page.locator("#report-table tbody tr")
    expect(rows).to_have_count(3)
    # The page names the files it sent from its own list; the portal knows their positions.
    rejected = page.locator("#report-table tbody tr.rejected")
    expect(rejected).to_contain_text("north-export/series2/ct.dcm (#3)")
    expect(rejected).to_contain_text("modality CT is not a radiograph")
    expect(page.locator("#report-table")).to_contain_text("0 y 6 m")
    # A warning is its own marked cell on an accepted line, not a rejection.
    warned = page.locator("#report-table tbody tr.accepted.warned")
    expect(warned).to_have_count(1)
    expect(warned.locator("td.warning")).to_have_text(
        "⚠ PatientAge says 15 years; the dates say 4 years 10 months (the dates are used)"
    )
    expect(page.locator("#report-table tbody tr.rejected td.warning")).to_have_count(0)
    assert Image.objects.count() == 2

    # The address now names the upload: reloading shows the same report, by position only
    # (the portal kept no names).
    assert re.search(r"/uploads/\d+/$", page.url)
    page.reload()
    expect(page.locator("#report-table tbody tr")).to_have_count(3)
    expect(page.locator("#report-table tbody tr td:first-child")).to_have_text(["#1", "#2", "#3"])
    expect(page.locator("#report-table")).not_to_contain_text("north-export")
    page.check("input[name=filter][value=rejected]")
    expect(page.locator("#report-table tbody tr")).to_have_count(1)
    expect(page.locator("#report-next")).to_be_hidden()


def test_report_pages_through_a_long_upload(
    browser: Browser, live_server, admin_user, site, default_worker, tmp_path
):
    folder = tmp_path / "many"
    for i in range(105):
        make_dicom(folder / f"{i:03d}.dcm", modality="CT" if i % 50 == 0 else "DX")

    page = browser.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/uploads/new/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "lead-password-123")
    page.click("button[type=submit]")
    expect(page.locator("#upload-app")).to_have_attribute("data-ready", "true")
    page.set_input_files("#pick-folder", str(folder))
    page.click("#start")

    expect(page.locator("#phase")).to_have_text(re.compile(r"Upload \d+ done"), timeout=120_000)
    rows = page.locator("#report-table tbody tr")
    expect(rows).to_have_count(100)
    # In the order the browser sent them (the folder picker's), each by its own name.
    expect(rows.first).to_contain_text(re.compile(r"many/\d{3}\.dcm \(#1\)"))
    page.click("#report-next")
    expect(rows).to_have_count(5)
    expect(rows.last).to_contain_text(re.compile(r"many/\d{3}\.dcm \(#105\)"))
    expect(page.locator("#report-next")).to_be_hidden()
    page.click("#report-previous")
    expect(rows).to_have_count(100)


def test_upload_page_and_jobs_page_follow_the_prediction_job(
    browser: Browser, live_server, admin_user, site, start_worker, tmp_path
):
    start_worker("default", "default", pool="threads")
    start_worker("inference", "inference", app="inference_worker")
    make_checkpoint(tmp_path / "ckpt")
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    folder = tmp_path / "export"
    make_dicom(folder / "a.dcm")
    make_dicom(folder / "b.dcm", sex="M")

    page = browser.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/uploads/new/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "lead-password-123")
    page.click("button[type=submit]")
    expect(page.locator("#upload-app")).to_have_attribute("data-ready", "true")
    page.set_input_files("#pick-folder", str(folder))
    page.click("#start")

    expect(page.locator("#predictions")).to_contain_text(
        "done, 2 of 2 done, 0 failed", timeout=90_000
    )
    page.goto(f"{live_server.url}/jobs/")
    row = page.locator("#jobs-table tbody tr").first
    expect(row).to_contain_text("tiny")
    expect(row).to_contain_text("done")
