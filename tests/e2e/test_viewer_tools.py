"""The viewer's tools in a real headless Chromium (issue 17, item 5): the first pixels of a real
2k x 2k JPEG 2000 chest film within a second (the server's low-resolution rendition, drawn while
Cornerstone3D decodes the film), the window width/level readout, the file's own VOI window as
a preset, the zoom, pan, rotate, flip and reset keys, and the length tool in millimetres where
the film states its pixel spacing (in pixels, and said so, where it does not)."""

import io
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from playwright.sync_api import Browser, Page, expect
from pydicom.data import get_testdata_file

from portal.accounts.models import AuditEvent
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.services import upload_create, upload_process
from tests.dicom_files import make_dicom
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The first pixels of the film must be on screen this soon after navigation starts (issue 17).
FIRST_PIXELS_MS = 1000
SPACING_MM = 0.15  # make_dicom's PixelSpacing
MARK = (slice(200, 280), slice(300, 380))  # rows, columns of the marker on a 512 x 512 film

# Chromium's Element Timing API: when the preview <img elementtiming="first-pixels"> was painted
# (renderTime, ms after navigation start), and when the viewer said the full film is drawn.
TIMING_SCRIPT = """
window.__firstPixels = null;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.identifier === "first-pixels" && window.__firstPixels === null) {
      window.__firstPixels = { at: entry.renderTime || entry.loadTime, width: entry.naturalWidth };
    }
  }
}).observe({ type: "element", buffered: true });
window.__fullFilm = null;
new MutationObserver(() => {
  const app = document.getElementById("viewer-app");
  if (app && app.dataset.ready === "true" && window.__fullFilm === null) {
    window.__fullFilm = performance.now();
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""


def _ingest(site, *paths: Path) -> list[Image]:
    upload = upload_create(site=site, source=Upload.Source.CLI)
    upload_process(upload=upload, sources=[Source.given(p) for p in paths])
    return list(Image.objects.filter(upload=upload).order_by("id"))


def _login(browser: Browser, live_server, username: str) -> Page:
    # A fresh context: no cached preview, script or DICOM from an earlier test.
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/review/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#queue-table")).to_be_visible()
    return page


def _wait_ready(page: Page, image_id: int) -> None:
    expect(page.locator("#viewer-app")).to_have_attribute("data-image-id", str(image_id))
    expect(page.locator("#viewer-app")).to_have_attribute("data-ready", "true", timeout=60_000)


def _shot(page: Page) -> np.ndarray:
    png = page.locator("#viewport").screenshot()
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("L"), dtype=float)[2:-2, 2:-2]


def _marker(page: Page) -> np.ndarray:
    """Where the bright marker is, relative to the viewport's centre, in CSS pixels."""
    page.wait_for_timeout(250)
    shot = _shot(page)
    ys, xs = np.nonzero(shot > shot.max() - 40)
    assert len(xs) > 20, "the marker is not on screen"
    return np.array([xs.mean() - shot.shape[1] / 2, ys.mean() - shot.shape[0] / 2])


def _readout(page: Page) -> tuple[float, float]:
    readout = page.locator("#wl-readout")
    return float(readout.get_attribute("data-width")), float(readout.get_attribute("data-level"))


@pytest.fixture
def films(tmp_path):
    north = f.site("north")
    f.user("rita", "reviewer", north)
    chest = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))  # 1955 x 1841, MONOCHROME1
    chest.PatientBirthDate = "19970826"  # a 7-year-old: the film as shipped is of an adult
    chest.save_as(tmp_path / "chest.dcm")
    marker = np.full((512, 512), 200, np.uint16)
    marker[MARK] = 3800
    make_dicom(tmp_path / "marker.dcm", rows=512, cols=512, pixels=marker, sex="M")
    film, square = _ingest(north, tmp_path / "chest.dcm", tmp_path / "marker.dcm")
    assert film.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless
    assert square.pixel_spacing_mm == [SPACING_MM, SPACING_MM]
    return film, square


def test_first_pixels_of_a_jpeg2000_film_appear_within_a_second(
    browser: Browser, live_server, films
):
    film, _ = films
    page = _login(browser, live_server, "rita")
    page.add_init_script(TIMING_SCRIPT)
    page.goto(f"{live_server.url}/images/{film.pk}/")  # cold: no preview rendered or cached yet
    # A function, not an expression: Playwright polls an expression through eval(), which the
    # portal's Content-Security-Policy refuses whenever the first check comes too early.
    page.wait_for_function("() => window.__firstPixels !== null", timeout=15_000)
    first = page.evaluate("window.__firstPixels")
    _wait_ready(page, film.pk)
    full = page.evaluate("window.__fullFilm")
    print(f"first pixels {first['at']:.0f} ms, full film {full:.0f} ms after navigation start")
    assert first["width"] >= 200, first  # a low-resolution rendition of the film, not an icon
    assert first["at"] < FIRST_PIXELS_MS, f"first pixels after {first['at']:.0f} ms"
    assert first["at"] < full, "the preview came no earlier than the film"
    # The full film replaced the preview, which was handed out on the record.
    expect(page.locator("#viewport-preview")).to_have_count(0)
    assert AuditEvent.objects.filter(action="image.preview", image_id=film.pk).count() == 1

    # The preview is the film as the viewer first shows it: MONOCHROME1 shown with bone bright,
    # the mediastinum (mid-width) brighter than both lung fields.
    response = page.request.get(f"{live_server.url}/api/images/{film.pk}/preview/")
    assert (response.status, response.headers["content-type"]) == (200, "image/jpeg")
    preview = np.asarray(PILImage.open(io.BytesIO(response.body())).convert("L"), dtype=float)
    assert 200 <= max(preview.shape) <= 512
    band = preview[int(preview.shape[0] * 0.35) : int(preview.shape[0] * 0.55)]
    width = preview.shape[1]
    mediastinum = band[:, int(width * 0.47) : int(width * 0.53)].mean()
    lungs = [band[:, int(width * x) - 10 : int(width * x) + 10].mean() for x in (0.3, 0.7)]
    assert mediastinum > max(lungs) + 15, (mediastinum, lungs)


def test_window_readout_file_window_keys_and_length_tool(browser: Browser, live_server, films):
    film, square = films
    page = _login(browser, live_server, "rita")
    page.goto(f"{live_server.url}/images/{film.pk}/")
    _wait_ready(page, film.pk)
    app, readout = page.locator("#viewer-app"), page.locator("#wl-readout")

    # The file's own window (WindowCenter 15000, WindowWidth 30000) is the first preset, applied,
    # and read out; the lungs are not black in it.
    presets = page.locator("#wl-presets button")
    expect(presets.first).to_have_attribute("data-preset", "file-1")
    expect(presets.first).to_have_text("File window")
    expect(presets.first).to_have_attribute("aria-pressed", "true")
    expect(readout).to_have_text("W 30000 · L 15000")
    shot = _shot(page)
    ys, xs = np.nonzero(shot > 10)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    band = shot[top + (bottom - top) * 2 // 5 : top + (bottom - top) * 3 // 5]
    for x in (0.3, 0.7):
        column = int(left + x * (right - left))
        assert band[:, column - 10 : column + 10].mean() > 40, "the lungs are black"

    # The readout follows a window/level drag live, before the button is released.
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 60, steps=6)
    expect(readout).not_to_have_text("W 30000 · L 15000")
    during = _readout(page)
    page.mouse.move(cx + 200, cy + 120, steps=6)
    page.mouse.up()
    after = _readout(page)
    assert during != after != (30000.0, 15000.0), (during, after)

    # Another preset reads out its own window; the file's window comes back exactly.
    page.click("#wl-presets button[data-preset=lung]")
    expect(readout).not_to_have_text("W 30000 · L 15000")
    page.click("#wl-presets button[data-preset=file-1]")
    expect(readout).to_have_text("W 30000 · L 15000")

    # This film's PixelSpacing is 0\0: a length is in image pixels, and says so.
    page.keyboard.press("m")
    expect(app).to_have_attribute("data-measuring", "true")
    expect(page.locator("#measure")).to_have_attribute("aria-pressed", "true")
    page.mouse.move(cx - 100, cy)
    page.mouse.down()
    page.mouse.move(cx + 100, cy, steps=5)
    page.mouse.up()
    length = page.locator("#length-readout")
    expect(length).to_have_attribute("data-unit", "px")
    expect(length).to_contain_text("no pixel spacing")
    # The label on the film says the same, never Cornerstone's own "px Unknown".
    label = page.locator("#viewport svg text").first
    expect(label).to_contain_text("px (no pixel spacing: not in mm)")
    assert "Unknown" not in page.locator("#viewport svg").first.text_content()
    expect(readout).to_have_text("W 30000 · L 15000")  # measuring, the left drag did not window
    page.keyboard.press("M")
    expect(length).to_be_hidden()

    # The help lists the new keys.
    page.keyboard.press("?")
    help_box = page.locator("#help")
    for text in (
        "zoom in",
        "rotate 90° clockwise",
        "flip left-right",
        "flip upside down",
        "measure",
    ):
        expect(help_box).to_contain_text(text)
    page.keyboard.press("Escape")

    # The marker film: keys move the marker where they should.
    page.goto(f"{live_server.url}/images/{square.pk}/")
    _wait_ready(page, square.pk)
    start = _marker(page)
    assert start[0] > 20, start  # right of the centre
    assert start[1] < 0, start  # and above it
    page.keyboard.press("f")
    flipped = _marker(page)
    assert np.allclose(flipped, [-start[0], start[1]], atol=3), (start, flipped)
    page.keyboard.press("f")
    page.keyboard.press("v")
    assert np.allclose(_marker(page), [start[0], -start[1]], atol=3)
    page.keyboard.press("v")
    page.keyboard.press("t")  # clockwise: right of the centre goes below it
    assert np.allclose(_marker(page), [-start[1], start[0]], atol=3)
    page.keyboard.press("T")
    assert np.allclose(_marker(page), start, atol=3)
    page.keyboard.press("+")
    assert np.allclose(_marker(page), start * 1.25, atol=4)
    page.keyboard.press("ArrowLeft")
    panned = _marker(page)
    assert np.allclose(panned, start * 1.25 - [box["width"] * 0.1, 0], atol=4), (start, panned)
    page.keyboard.press("t")
    page.keyboard.press("f")
    page.keyboard.press("r")  # reset: zoom, pan, rotation and flip
    assert np.allclose(_marker(page), start, atol=3)
    page.keyboard.press("-")
    assert np.allclose(_marker(page), start / 1.25, atol=3)
    page.keyboard.press("r")

    # A length on a film with PixelSpacing 0.15 mm: millimetres, 0.15 mm per image pixel.
    page.keyboard.press("m")
    page.mouse.move(cx - 150, cy + 50)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 50, steps=5)
    page.mouse.up()
    expect(length).to_have_attribute("data-unit", "mm")
    expect(length).to_have_text(re.compile(r"^Length \d+\.\d mm$"))
    # Cornerstone updates a length's statistics a moment after the line (throttled).
    ratio = f"{SPACING_MM}"
    page.wait_for_function(
        f"""() => {{
            const d = document.getElementById("length-readout").dataset;
            const ratio = Number(d.length) / Number(d.pixels);
            return Number(d.pixels) > 50 && Math.abs(ratio - {ratio}) < {ratio} / 100;
        }}""",
        timeout=5_000,
    )
