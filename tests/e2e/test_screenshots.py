"""The screenshots of the README and the documentation (docs/img/viewer.png, docs/img/report.png),
taken in headless Chromium from a live portal with demo data.

They are written only on demand, so that an everyday run never changes tracked files:

    make screenshots      # PORTAL_SCREENSHOTS=1 pytest tests/e2e/test_screenshots.py

Without PORTAL_SCREENSHOTS the test is skipped; tests/test_docs.py checks that the images exist
and that the README and the docs show them."""

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from PIL import Image as PILImage
from playwright.sync_api import Browser, Page, expect
from pydicom.data import get_testdata_file

from inference_worker.heatmap import ZERO_LEVEL
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.services import upload_create, upload_process
from portal.reports.services import report_create, report_finish
from portal.review.services import review_submit
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("PORTAL_SCREENSHOTS"),
        reason="writes docs/img/*.png: run `make screenshots` (PORTAL_SCREENSHOTS=1)",
    ),
]

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
VIEWPORT = {"width": 1400, "height": 900}


def _login(page: Page, url: str, username: str, next_path: str) -> None:
    page.goto(f"{url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")


def _signed_heatmap(rows: int, columns: int) -> np.ndarray:
    """An illustrative signed map (no model runs here): up along the spine and mediastinum, down
    over the lower lung fields, on the compact grid (at most 128 px on the long side)."""
    scale = 128 / max(rows, columns)
    h, w = max(1, round(rows * scale)), max(1, round(columns * scale))
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    up = np.exp(-(((x - 0.5) / 0.08) ** 2 + ((y - 0.45) / 0.25) ** 2))
    down = np.exp(-(((x - 0.28) / 0.1) ** 2 + ((y - 0.62) / 0.1) ** 2))
    down += np.exp(-(((x - 0.72) / 0.1) ** 2 + ((y - 0.62) / 0.1) ** 2))
    heat = up - 0.6 * down
    return (ZERO_LEVEL + 127 * heat / np.abs(heat).max()).round().astype(np.uint8)


def test_screenshot_of_the_viewer(browser: Browser, live_server, tmp_path):
    north = f.site("demo-north")
    f.user("rita", "reviewer", north)
    version = f.model_version("demo-ca-resnet18", card={"expected_error_months": {"overall": 6.0}})
    chest = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    chest.PatientBirthDate = "19970826"  # a 7-year-old: the film as shipped is of an adult
    chest.save_as(tmp_path / "chest.dcm")
    upload = upload_create(site=north, source=Upload.Source.CLI)
    upload_process(upload=upload, sources=[Source.given(tmp_path / "chest.dcm")])
    film = Image.objects.get(upload=upload)

    prediction = f.prediction(film, version, age_days=film.age_days + 1500)
    prediction.heatmap = f"heatmaps/{version.name}/{film.uuid}.png"
    target = Path(settings.DATA_DIR) / prediction.heatmap
    target.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(_signed_heatmap(film.rows, film.columns), mode="L").save(target)
    prediction.heatmap_scale, prediction.heatmap_blank = "signed", False
    prediction.save(update_fields=["heatmap", "heatmap_scale", "heatmap_blank"])

    page = browser.new_page(viewport=VIEWPORT)
    _login(page, live_server.url, "rita", f"/images/{film.pk}/")
    expect(page.locator("#viewer-app")).to_have_attribute("data-ready", "true", timeout=60_000)
    if page.locator("#viewer-app").get_attribute("data-heatmap") != "on":
        page.keyboard.press("h")
    expect(page.locator("#viewer-app")).to_have_attribute("data-heatmap", "on")
    page.wait_for_timeout(500)
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=IMG / "viewer.png")
    assert PILImage.open(IMG / "viewer.png").size == (VIEWPORT["width"], VIEWPORT["height"])


def test_screenshot_of_a_report_page(browser: Browser, live_server):
    """A report over 160 synthetic items from two sites (made-up ages and predictions)."""
    rng = np.random.default_rng(17)
    north, south = f.site("demo-north"), f.site("demo-south")
    lead = f.user("lena", "lead", north, south)
    version = f.model_version("demo-ca-resnet18")
    for i in range(160):
        age = int(rng.integers(20, 6500))
        image = f.image(north if i % 2 else south, age_days=age, sex="MF"[i % 3 % 2])
        error = rng.normal(0, 150 + age / 15) + (60 if i % 2 else -30)
        f.prediction(image, version, age_days=int(np.clip(age + error, 0, 6573)))
        image.refresh_from_db()
        review_submit(
            image=image,
            reviewer=lead,
            decision="confirm",
            age_days=None,
            reason="",
            comment="",
            expected_revision=image.revision,
        )
    chosen = validation_set_create(name="demo-set", sites=[north, south], user=lead)
    frozen = validation_set_freeze(validation_set=chosen, user=lead)
    report = report_finish(report=report_create(version=frozen, model=version, build=False))

    page = browser.new_page(viewport=VIEWPORT)
    _login(page, live_server.url, "lena", f"/reports/{report.pk}/")
    expect(page.locator("[data-plot] img")).to_have_count(4)
    # The figures, not the page's header and definitions: from the first table of figures down,
    # which takes in the age group x sex and site tables and the first plots.
    top = page.locator("table[data-kind=metrics]").first.evaluate(
        "t => (t.previousElementSibling || t).getBoundingClientRect().top + window.scrollY"
    )
    clip = {"x": 0, "y": max(0, top - 8), "width": VIEWPORT["width"], "height": 1500}
    page.screenshot(path=IMG / "report.png", full_page=True, clip=clip)
    assert PILImage.open(IMG / "report.png").size == (VIEWPORT["width"], 1500)
