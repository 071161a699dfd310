"""A lead opens a report in the browser and reads its numbers; the CSV, JSON and PDF
downloads carry the same overall MAE, and the PDF has its plots."""

import csv
import io
import json
import re

import pytest
from playwright.sync_api import Browser, expect
from pypdf import PdfReader

from portal.reports.render import PLOTS
from portal.reports.services import report_create, report_finish
from tests.portal import factories as f
from tests.portal.reports.test_reports import frozen_world

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_lead_reads_a_report_and_its_downloads_agree(browser: Browser, live_server):
    world = frozen_world()
    report = report_finish(
        report=report_create(version=world["frozen"], model=world["model"], build=False)
    )
    page = browser.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/validation-sets/ns/")
    page.fill("#id_username", "lena")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    page.click(f"a[href='/reports/{report.pk}/']")

    summary = page.locator("#report-summary")
    expect(summary).to_contain_text("MAE")
    shown = re.search(r"m1: MAE (\d+\.\d\d) months", summary.inner_text()).group(1)
    overall_row = page.locator("table[data-kind=metrics] tbody tr").first
    expect(overall_row).to_contain_text(shown)
    expect(page.locator("[data-plot] img")).to_have_count(4)

    def download(fmt: str) -> bytes:
        with page.expect_download() as info:
            page.click(f"#downloads a[data-format={fmt}]")
        return info.value.path().read_bytes()

    assert f"{json.loads(download('json'))['overall']['mae_months']:.2f}" == shown
    rows = list(csv.DictReader(io.StringIO(download("csv").decode())))
    assert next(r for r in rows if r["group"] == "overall")["mae_months"] == shown
    pdf = PdfReader(io.BytesIO(download("pdf")))
    assert f"MAE {shown} months" in pdf.pages[0].extract_text()
    text = "".join(page.extract_text() for page in pdf.pages)
    for title in PLOTS.values():  # every plot has a page with its title
        assert title in text, title
