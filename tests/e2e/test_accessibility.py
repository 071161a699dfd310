"""axe-core on every page a user can reach, in headless Chromium: no serious or critical
finding (contrast, labels, landmarks, names of buttons)."""

import pytest
from django.template.loader import render_to_string
from playwright.sync_api import Browser, Page, expect

from portal.ingest.models import Upload
from portal.reports.services import report_create, report_finish
from tests.e2e.axe import BLOCKING, axe_findings, keyboard_gaps
from tests.portal import factories as f
from tests.portal.reports.test_reports import frozen_world

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def login(browser: Browser, live_server, username: str, password: str = f.PASSWORD) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your sites")
    return page


def test_every_page_has_no_serious_axe_finding_and_every_control_takes_focus(
    browser: Browser, live_server, settings
):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    world = frozen_world(dicom=True)
    north = world["set"].sites.get(slug="north")
    for age in (400, 3000):  # open cases in the queue, one far from its prediction
        f.prediction(f.image(north, age_days=age), world["model"], age_days=age + 900)
    report = report_finish(
        report=report_create(version=world["frozen"], model=world["model"], build=False)
    )
    assert report.state == "done", report.failure_reason
    f.user("rita", "reviewer", north)
    upload = Upload.objects.first()
    image = world["images"][1]
    url = live_server.url
    findings: dict[str, list] = {}

    def check(page: Page, what: str) -> None:
        findings[what] = [x for x in axe_findings(page) if x["impact"] in BLOCKING]
        findings[what] += [f"not reachable by keyboard: {x}" for x in keyboard_gaps(page)]

    anonymous = browser.new_page()
    anonymous.goto(f"{url}/accounts/login/")
    check(anonymous, "login")
    anonymous.fill("#id_username", "lena")
    anonymous.fill("#id_password", "wrong")
    anonymous.click("button[type=submit]")
    check(anonymous, "login with an error")

    lead = login(browser, live_server, "lena")
    pages = {
        "home": "/",
        "uploads list": "/uploads/",
        "upload (new)": "/uploads/new/",
        "upload (report)": f"/uploads/{upload.pk}/",
        "jobs": "/jobs/",
        "queue": "/review/",
        "image list": "/images/",
        "audit": "/audit/",
        "team": "/team/",
        "validation sets": "/validation-sets/",
        "validation set": f"/validation-sets/{world['set'].name}/",
        "validation import": "/validation-sets/import/new/",
        "report": f"/reports/{report.pk}/",
        "404": "/images/999999/",
        "400": "/images/?sex=X",
    }
    for what, path in pages.items():
        lead.goto(url + path)
        if what == "upload (new)":
            expect(lead.locator("#upload-app")).to_have_attribute("data-ready", "true")
        check(lead, what)

    lead.goto(f"{url}/images/{image.pk}/")
    expect(lead.locator("#viewer-app")).to_have_attribute("data-ready", "true", timeout=60_000)
    check(lead, "viewer")

    lead.goto(f"{url}/validation-sets/")
    lead.click("#set-form button[type=submit]")
    expect(lead.locator("#form-errors")).to_be_visible()
    check(lead, "validation set form with errors")

    # The 500 and expired-form pages are rendered as their handlers render them (no request),
    # shown at a portal URL so that the stylesheet loads.
    lead.goto(f"{url}/")
    lead.set_content(render_to_string("500.html"))
    expect(lead.locator("h1")).to_have_text("Something went wrong")
    check(lead, "500")
    lead.set_content(render_to_string("403_csrf.html"))
    expect(lead.locator("h1")).to_have_text("This form has expired")
    check(lead, "403 (form expired)")

    reviewer = login(browser, live_server, "rita")
    reviewer.goto(f"{url}/uploads/new/")
    expect(reviewer.locator("h1")).to_have_text("You cannot do this here")
    check(reviewer, "403")

    assert len(findings) == 22
    assert not any(findings.values()), {k: v for k, v in findings.items() if v}
