"""A reviewer works the queue in the browser: the real Cornerstone3D viewer on a real
MONOCHROME1 chest film (JPEG 2000, decoded in the browser) and on a film with a marker, the
heatmap overlay drawn from the viewer's own camera, and a correction made from the keyboard."""

import io
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from PIL import Image as PILImage
from playwright.sync_api import Browser, Page, Request, expect
from pydicom.data import get_testdata_file

from inference_worker.ages import years_months_to_days
from inference_worker.heatmap import ZERO_LEVEL
from portal.accounts.models import AuditEvent
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.services import upload_create, upload_process
from portal.review import selectors
from tests.dicom_files import make_dicom
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MARK = (slice(200, 280), slice(300, 380))  # rows, columns of the marker on a 512 x 512 film


def _ingest(site, *paths: Path) -> list[Image]:
    upload = upload_create(site=site, source=Upload.Source.CLI)
    upload_process(upload=upload, sources=[Source.given(p) for p in paths])
    return list(Image.objects.filter(upload=upload).order_by("id"))


def _heatmap(image: Image, name: str, heat: np.ndarray) -> str:
    """An 8-bit single-channel heatmap covering the image's extent (the compact format)."""
    path = f"heatmaps/{name}/{image.uuid}.png"
    target = Path(settings.DATA_DIR) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(heat.astype(np.uint8), mode="L").save(target)
    return path


def _shot(page: Page) -> np.ndarray:
    """What the viewport shows (the viewer's canvases, composited), as grey levels; the edge
    rows are cut, since a fractional element height lets the page background into the last."""
    png = page.locator("#viewport").screenshot()
    return np.asarray(PILImage.open(io.BytesIO(png)).convert("L"), dtype=float)[2:-2, 2:-2]


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(xs) > 20, "nothing found"
    return np.array([xs.mean(), ys.mean()])


def record_requests(page: Page) -> list[Request]:
    """Every request the page makes from now on, as the browser sent it."""
    seen: list[Request] = []
    page.on("request", lambda request: seen.append(request))
    return seen


def assert_loaded_through_wado_rs(requests: list[Request], image: Image) -> bytes:
    """The viewer took `image` from DICOMweb (its WADO-RS metadata, then frame 1, asking for
    the frame as stored) and never from the file download; returns the frames answer."""
    urls = [r.url for r in requests]
    frames = [r for r in requests if r.url.endswith(f"{image.wado_rs_path}/frames/1")]
    assert frames, urls
    assert any(u.endswith(f"{image.wado_rs_path}/metadata") for u in urls), urls
    assert "transfer-syntax=*" in frames[0].headers["accept"], frames[0].headers
    assert not [u for u in urls if re.search(r"/api/images/\d+/dicom/", u)], urls
    response = frames[0].response()
    assert response is not None
    assert response.status == 200
    return response.body()


def _wait_ready(page: Page, image_id: int) -> None:
    expect(page.locator("#viewer-app")).to_have_attribute("data-image-id", str(image_id))
    expect(page.locator("#viewer-app")).to_have_attribute("data-ready", "true", timeout=60_000)


@pytest.fixture
def world(tmp_path, settings):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    north = f.site("north")
    f.user("rita", "reviewer", north)
    version = f.model_version("tiny", card={"expected_error_months": {"overall": 6.0}})
    chest = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    chest.PatientBirthDate = "19970826"  # a 7-year-old: the film as shipped is of an adult
    chest.save_as(tmp_path / "chest.dcm")
    marker = np.full((512, 512), 200, np.uint16)
    marker[MARK] = 3800
    make_dicom(tmp_path / "marker.dcm", rows=512, cols=512, pixels=marker, sex="M")
    film, square = _ingest(north, tmp_path / "chest.dcm", tmp_path / "marker.dcm")

    heat = np.zeros((256, 256))
    heat[100:140, 150:190] = 255  # the marker's place on the 256-px grid
    for image, predicted in ((film, film.age_days + 1500), (square, square.age_days + 700)):
        prediction = f.prediction(image, version, age_days=predicted)
        prediction.heatmap = _heatmap(image, version.name, heat)
        prediction.save(update_fields=["heatmap"])
    return {"film": film, "square": square, "version": version}


def test_reviewer_works_the_queue_in_the_viewer_and_corrects_an_age_by_keyboard(
    browser: Browser, live_server, world
):
    film, square = world["film"], world["square"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests = record_requests(page)
    page.goto(f"{live_server.url}/accounts/login/?next=/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    rows = page.locator("#queue-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-image", str(film.pk))  # the higher score

    page.click("#start-reviewing")
    _wait_ready(page, film.pk)
    expect(page.locator("#case-status")).to_have_text("unreviewed")
    expect(page.locator("#recorded-age")).to_contain_text("7 y")

    # The film itself, heatmap off: not blank, and a radiologist's MONOCHROME1 (air dark, bone
    # bright): the mediastinum, mid-width, is brighter than both lung fields.
    if page.locator("#viewer-app").get_attribute("data-heatmap") == "on":
        page.keyboard.press("h")
    expect(page.locator("#viewer-app")).to_have_attribute("data-heatmap", "off")
    plain = _shot(page)
    ys, xs = np.nonzero(plain > 10)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    assert plain[top:bottom, left:right].std() > 20, "the viewport is blank"
    mid = (top + bottom) // 2
    band = slice(mid - (bottom - top) // 10, mid + (bottom - top) // 10)

    def column(fraction: float) -> float:
        x = int(left + fraction * (right - left))
        return plain[band, x - 10 : x + 10].mean()

    mediastinum, lungs = column(0.5), (column(0.3), column(0.7))
    assert mediastinum > max(lungs) + 15, (mediastinum, lungs)
    # Those pixels came over WADO-RS: the JPEG 2000 codestream as stored, decoded here.
    frames = assert_loaded_through_wado_rs(requests, film)
    assert b"transfer-syntax=1.2.840.10008.1.2.4.90" in frames[:400], frames[:400]

    # Window/level by dragging changes the pixels.
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 80, steps=8)
    page.mouse.up()
    page.wait_for_timeout(300)
    windowed = _shot(page)
    assert np.abs(windowed - plain).mean() > 5, "window/level drag changed nothing"

    # The heatmap toggle changes the pixels.
    page.keyboard.press("h")
    expect(page.locator("#viewer-app")).to_have_attribute("data-heatmap", "on")
    page.wait_for_timeout(300)
    changed = np.abs(_shot(page) - windowed) > 20
    assert changed.mean() > 0.005, "the heatmap toggle changed nothing"  # the hot square: ~2%

    # Correct the age from the keyboard only: 5 years 2 months.
    page.keyboard.press("e")
    expect(page.locator("#age-years")).to_be_focused()
    page.keyboard.type("5")
    page.keyboard.press("Tab")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    expect(page.locator("#case-status")).to_have_text("corrected")
    expected_days = years_months_to_days(5, 2)
    film.refresh_from_db()
    assert (film.status, film.curated_age_days, film.revision) == ("corrected", expected_days, 1)
    assert film.lease_holder is None
    rita_queue = selectors.queue(user=film.reviews.get().reviewer, filters=selectors.QueueFilters())
    assert [p.image_id for p in rita_queue] == [square.pk]
    event = AuditEvent.objects.get(action="review.correct", image_id=film.pk)
    assert (event.actor_name, event.after["curated_age_days"]) == ("rita", expected_days)

    # In queue mode the viewer moves on to the next case by itself.
    _wait_ready(page, square.pk)
    assert re.search(rf"/images/{square.pk}/\?queue=1", page.url)
    history = page.locator("#history")
    expect(history).to_contain_text("rita")

    # The overlay stays on the marker under zoom and pan: find the marker with the heatmap
    # off, the overlay as the difference it makes, and compare their centres.
    def marker_and_overlay() -> tuple[np.ndarray, np.ndarray]:
        if page.locator("#viewer-app").get_attribute("data-heatmap") == "on":
            page.keyboard.press("h")
        page.wait_for_timeout(300)
        off = _shot(page)
        page.keyboard.press("h")
        page.wait_for_timeout(300)
        on = _shot(page)
        return _centre(off > off.max() - 30), _centre(np.abs(on - off) > 25)

    marker, overlay = marker_and_overlay()
    assert np.linalg.norm(marker - overlay) < 4, (marker, overlay)
    box = page.locator("#viewport").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
    for _ in range(6):
        page.mouse.wheel(0, -200)
    page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")
    zoomed_marker, zoomed_overlay = marker_and_overlay()
    assert np.linalg.norm(zoomed_marker - marker) > 10, "zoom and pan moved nothing"
    assert np.linalg.norm(zoomed_marker - zoomed_overlay) < 4, (zoomed_marker, zoomed_overlay)


def _login(browser: Browser, live_server, username: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/?next=/review/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#queue-table")).to_be_visible()
    return page


def test_the_viewer_explains_the_signed_heatmap_and_says_when_a_map_is_blank(
    browser: Browser, live_server, tmp_path
):
    """A signed map: a legend while it is on (warm pushes the age up, cool down), drawn in
    warm colour where the map pushes up. A blank map: no overlay, the toggle stays off, and
    the viewer says the model's gradient is zero instead of showing an empty "on"."""
    north = f.site("north")
    f.user("rita", "reviewer", north)
    version = f.model_version("tiny")
    films = []
    for k in range(2):
        pixels = np.full((256, 256), 900 + 100 * k, np.uint16)  # two films, not duplicates
        pixels[100:140, 150:190] = 2000
        films.append(make_dicom(tmp_path / f"{k}.dcm", rows=256, cols=256, pixels=pixels))
    signed, blank = _ingest(north, *films)
    up = np.full((128, 128), ZERO_LEVEL)
    up[50:70, 75:95] = 255  # the bright square pushes the age up
    for image, heat, is_blank in ((signed, up, False), (blank, np.full((128, 128), 128), True)):
        prediction = f.prediction(image, version, age_days=image.age_days + 900)
        prediction.heatmap = _heatmap(image, version.name, heat)
        prediction.heatmap_scale, prediction.heatmap_blank = "signed", is_blank
        prediction.save(update_fields=["heatmap", "heatmap_scale", "heatmap_blank"])

    page = _login(browser, live_server, "rita")
    page.goto(f"{live_server.url}/images/{signed.pk}/")
    _wait_ready(page, signed.pk)
    app, legend = page.locator("#viewer-app"), page.locator("#heatmap-legend")
    if app.get_attribute("data-heatmap") == "on":
        page.keyboard.press("h")
    expect(app).to_have_attribute("data-heatmap", "off")
    expect(legend).to_be_hidden()
    page.wait_for_timeout(300)
    off = np.asarray(PILImage.open(io.BytesIO(page.locator("#viewport").screenshot())), float)
    page.keyboard.press("h")
    expect(app).to_have_attribute("data-heatmap", "on")
    expect(legend).to_be_visible()
    expect(legend).to_have_attribute("data-scale", "signed")
    expect(legend).to_contain_text("pushes age down")
    expect(legend).to_have_attribute("title", re.compile("warm .* pushes the predicted age up"))
    page.wait_for_timeout(300)
    on = np.asarray(PILImage.open(io.BytesIO(page.locator("#viewport").screenshot())), float)
    changed = np.abs(on - off)[..., :3].sum(axis=2) > 40
    assert changed.mean() > 0.005, "the signed heatmap drew nothing"
    red, blue = on[changed][:, 0].mean(), on[changed][:, 2].mean()
    assert red > blue + 40, (red, blue)  # warm: this region pushes the age up
    expect(page.locator("#heatmap-note")).to_have_text("")

    page.goto(f"{live_server.url}/images/{blank.pk}/")
    _wait_ready(page, blank.pk)
    expect(app).to_have_attribute("data-heatmap", "blank")
    expect(page.locator("#heatmap-note")).to_contain_text("no heatmap signal")
    expect(page.locator("#heatmap-note")).to_be_visible()
    expect(page.locator("#heatmap-toggle")).to_be_disabled()
    expect(legend).to_be_hidden()
    page.keyboard.press("h")
    expect(app).to_have_attribute("data-heatmap", "blank")


def test_a_lossy_jpeg2000_film_shows_through_wado_rs_with_its_polarity(
    browser: Browser, live_server, tmp_path
):
    """pydicom-data's RG1_J2KI (JPEG 2000 lossy, MONOCHROME1, PixelSpacing 0\\0): its frame
    comes over WADO-RS as stored, is decoded in the browser and shown bone-bright."""
    north = f.site("north")
    f.user("rita", "reviewer", north)
    chest = pydicom.dcmread(get_testdata_file("RG1_J2KI.dcm"))
    chest.PatientBirthDate = "19970826"  # a 7-year-old: the film as shipped is of an adult
    chest.save_as(tmp_path / "lossy.dcm")
    (film,) = _ingest(north, tmp_path / "lossy.dcm")
    assert film.transfer_syntax_uid == "1.2.840.10008.1.2.4.91"

    page = _login(browser, live_server, "rita")
    requests = record_requests(page)
    page.goto(f"{live_server.url}/images/{film.pk}/")
    _wait_ready(page, film.pk)
    frames = assert_loaded_through_wado_rs(requests, film)
    assert b"transfer-syntax=1.2.840.10008.1.2.4.91" in frames[:400], frames[:400]
    # The file's window, from the metadata the viewer registered for the frame.
    expect(page.locator("#wl-readout")).to_have_text("W 30000 · L 15000")
    shot = _shot(page)
    ys, xs = np.nonzero(shot > 10)
    top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
    assert shot[top:bottom, left:right].std() > 20, "the viewport is blank"
    band = shot[(top + bottom) // 2 - 40 : (top + bottom) // 2 + 40]

    def column(fraction: float) -> float:
        x = int(left + fraction * (right - left))
        return band[:, x - 10 : x + 10].mean()

    mediastinum, lungs = column(0.5), (column(0.3), column(0.7))
    assert mediastinum > max(lungs) + 15, (mediastinum, lungs)
