"""Blind reading in the browser: a reader on a blind site sees no predicted age, residual, score
or heatmap before deciding (the queue row hides them too), and sees them once the decision is
saved, on the same screen, which stays on the case so that the reader can learn from it."""

import numpy as np
import pytest
from playwright.sync_api import Browser, expect

from portal.review.models import Review
from tests.e2e.test_review import _heatmap, _shot, _wait_ready
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HIDDEN = "hidden until you decide"


def test_a_reader_on_a_blind_site_sees_the_model_only_after_deciding(
    browser: Browser, live_server, settings
):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 1.0}
    site = f.site("north", blind_reading=True)
    f.user("rita", "reviewer", site)
    version = f.model_version("tiny", card={"expected_error_months": {"overall": 6.0}})
    image = f.image(site, age_days=2000, dicom=True)
    prediction = f.prediction(image, version, age_days=2000 + 730)  # 2 years older: score 4
    heat = np.zeros((256, 256))
    heat[64:192, 64:192] = 255  # a bright square over the middle of the film
    prediction.heatmap = _heatmap(image, version.name, heat)
    prediction.save(update_fields=["heatmap"])

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/?next=/review/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    row = page.locator(f'#queue-table tr[data-image="{image.pk}"]')
    expect(row).to_contain_text("hidden")
    expect(row).not_to_contain_text("2730")
    expect(row).not_to_contain_text("7 y 5 m")  # the predicted age, nor the sentence quoting it
    expect(page.locator("#blind-note")).to_be_visible()

    page.click("#start-reviewing")
    _wait_ready(page, image.pk)
    app = page.locator("#viewer-app")
    expect(app).to_have_attribute("data-output-hidden", "true")
    for field in ("#predicted-age", "#residual", "#score"):
        expect(page.locator(field)).to_have_text(HIDDEN)
    expect(page.locator("#why")).to_contain_text(HIDDEN)  # the sentence quotes the score
    expect(page.locator("#heatmap-note")).to_contain_text("blind reading")
    expect(page.locator("#heatmap-toggle")).to_be_disabled()
    page.keyboard.press("h")  # the key does nothing: there is no heatmap to show
    expect(app).to_have_attribute("data-heatmap", "off")
    before = _shot(page)

    page.keyboard.press("c")  # confirm the recorded age, blind
    expect(page.locator("#case-status")).to_have_text("confirmed")
    expect(app).to_have_attribute("data-output-hidden", "false")
    expect(page.locator("#predicted-age")).to_have_text("7 y 5 m")
    expect(page.locator("#residual")).to_have_text("+24.0 months")
    expect(page.locator("#score")).to_have_text("4.00")
    expect(page.locator("#why")).to_contain_text("4.0x the expected 6.0-month error")
    expect(page.locator("#decision-message")).to_contain_text("model's output is shown now")
    expect(page.locator("#heatmap-toggle")).to_be_enabled()
    if app.get_attribute("data-heatmap") == "off":
        page.keyboard.press("h")
    expect(app).to_have_attribute("data-heatmap", "on")
    page.wait_for_timeout(300)
    assert (np.abs(_shot(page) - before) > 20).mean() > 0.05, "the revealed heatmap is not drawn"
    # The screen stays on the case for learning (no move to the next one).
    page.wait_for_timeout(1500)
    assert f"/images/{image.pk}/" in page.url
    expect(page.locator("#history")).to_contain_text("blind")
    assert Review.objects.get(image=image).blind is True
