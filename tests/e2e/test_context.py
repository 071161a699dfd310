"""A case's context in the browser: the queue says why each case is there, in words and numbers,
with sex and residual columns and "case n of N", ages in years and months; the viewer repeats
the sentence and shows the same patient's other films beside the main image, their
window/level following the main viewport's."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from playwright.sync_api import Browser, expect

from inference_worker.ages import years_months_to_days
from tests.e2e.test_review import _wait_ready, assert_loaded_through_wado_rs, record_requests
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_queue_and_viewer_say_why_and_show_the_patient_s_other_films_in_step(
    browser: Browser, live_server, settings
):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 2.0}
    north = f.site("north")
    f.user("rita", "reviewer", north)
    version = f.model_version(
        "tiny", card={"expected_error_months": {"overall": 6.0, "0-1 M": 2.0}}
    )
    # A boy recorded at 2 months whom the model reads at 10 months: 4x the 2-month error.
    boy = f.image(north, age_days=years_months_to_days(0, 2), sex="M", dicom=True)
    f.prediction(boy, version, age_days=years_months_to_days(0, 10))
    # His two other films at this site (one at 8 months: the recorded age looks clerical).
    priors = [f.image(north, age_days=d, sex="M", dicom=True) for d in (243, 400)]
    for film in (boy, *priors):
        film.patient_pseudonym = "P-BOY"
        film.save(update_fields=["patient_pseudonym"])
    girl = f.image(north, age_days=2000, sex="F", dicom=True)
    f.prediction(girl, version, age_days=2000 + 500)  # 16.4 months older: score 2.7

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests = record_requests(page)
    page.goto(f"{live_server.url}/accounts/login/?next=/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#queue-count")).to_have_text("2 cases in the queue.")
    row = page.locator(f'#queue-table tr[data-image="{boy.pk}"]')
    expect(row.locator("td.case-n")).to_have_text("1 of 2")
    expect(row).to_contain_text("M")
    expect(row.locator("td.residual")).to_have_text("+8.0 months")
    expect(row.locator("td.why")).to_have_text(
        "The model reads 0 y 10 m against a recorded 0 y 2 m, 8.0 months (0 y 8 m) older: "
        "4.0x the expected 2.0-month error for boys under 1 year. Its recorded age disagrees "
        "with the study dates of 2 of the patient's 2 other films (by 6 months, 11 months). "
        "Triage score 4.0, above the queue's threshold of 2."
    )
    expect(page.locator("#queue-table")).not_to_contain_text(" d<")
    girl_row = page.locator(f'#queue-table tr[data-image="{girl.pk}"]')
    expect(girl_row.locator("td.case-n")).to_have_text("2 of 2")
    expect(girl_row).to_contain_text("5 y 5 m")  # 2000 days, as a person reads it

    page.click("#start-reviewing")
    _wait_ready(page, boy.pk)
    expect(page.locator("#queue-position")).to_have_text("Case 1 of 2 in your queue")
    expect(page.locator("#why")).to_contain_text("4.0x the expected 2.0-month error for boys")
    expect(page.locator("#recorded-age")).to_have_text("0 y 2 m")

    panel = page.locator("#other-films")
    expect(panel).to_be_visible()
    films = panel.locator("figure.film")
    expect(films).to_have_count(2)
    expect(films.first).to_contain_text("0 y 8 m, PA: 0 y 6 m older than this film")
    strip = page.locator("#other-films-strip")
    expect(strip).to_have_attribute("data-ready", "true", timeout=60_000)
    for index in range(2):
        expect(films.nth(index).locator(".film-viewport")).to_have_attribute("data-state", "shown")
    for film in (boy, *priors):  # the main image and the strip's, all over WADO-RS
        assert_loaded_through_wado_rs(requests, film)
    # Side by side with the main image, not below it.
    main_box = page.locator("#viewport").bounding_box()
    film_box = films.first.locator(".film-viewport").bounding_box()
    assert film_box["x"] > main_box["x"] + main_box["width"] - 1
    thumb = np.asarray(
        PILImage.open(io.BytesIO(films.first.locator(".film-viewport").screenshot())).convert("L"),
        dtype=float,
    )
    assert thumb.std() > 5, "the other film is not drawn"

    # Window/level on the main image: both other films follow it.
    before = strip.get_attribute("data-voi")
    assert before, "the strip took no window/level from the main image"
    cx, cy = main_box["x"] + main_box["width"] / 2, main_box["y"] + main_box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 150, cy + 80, steps=8)
    page.mouse.up()
    expect(strip).not_to_have_attribute("data-voi", before)
    after = strip.get_attribute("data-voi")
    for index in range(2):
        expect(films.nth(index).locator(".film-viewport")).to_have_attribute("data-voi", after)
