"""A lead's adjudication inbox in the browser: every disputed case of the site reaches the lead
whatever its score (one scored far below the queue's threshold, one never scored), from the
home page's Disputed count; reader 1 and reader 2 side by side; a correction from the keyboard
settles the case, and the history says who decided what in words."""

import re

import pytest
from playwright.sync_api import Browser, expect

from inference_worker.ages import years_months_text, years_months_to_days
from portal.review import selectors
from portal.review.services import review_submit
from tests.e2e.test_review import _wait_ready
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _read(image, reader, revision: int, decision: str, age_days: int | None = None) -> None:
    review_submit(
        image=image,
        reviewer=reader,
        decision=decision,
        age_days=age_days,
        reason="",
        comment="ossification centres" if decision == "correct" else "",
        expected_revision=revision,
    )


def test_a_lead_adjudicates_every_dispute_from_the_home_page(
    browser: Browser, live_server, settings
):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": 3.0}
    east = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", east), f.user("bob", "reviewer", east)
    lena = f.user("lena", "lead", east)
    version = f.model_version("tiny", card={"expected_error_months": {"overall": 6.0}})
    low = f.image(east, age_days=2000, dicom=True)
    f.prediction(low, version, age_days=2030)  # score ~0.2: far below the threshold
    unscored = f.image(east, age_days=3000, dicom=True)
    for image in (low, unscored):
        _read(image, alice, 0, "correct", age_days=image.age_days + 400)
        _read(image, bob, 1, "confirm")
    assert not selectors.queue(user=lena, filters=selectors.QueueFilters()).exists()

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/?next=/")
    page.fill("#id_username", "lena")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")
    disputed = page.locator('#dashboard tr[data-site="east"] td[data-status="disputed"] a')
    expect(disputed).to_have_text("2")
    disputed.click()

    expect(page).to_have_url(re.compile(r"/review/disputes/\?site=east$"))
    rows = page.locator("#disputes-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#disputes-table thead")).to_contain_text("Reader 1")
    row = page.locator(f'#disputes-table tr[data-image="{low.pk}"]')
    reader_1, reader_2 = row.locator('td[data-reader="1"]'), row.locator('td[data-reader="2"]')
    expect(reader_1).to_contain_text(f"corrected the age to {years_months_text(2400)}")
    expect(reader_1).to_contain_text("ossification centres")
    expect(reader_1).to_contain_text("alice")
    expect(reader_2).to_contain_text(f"confirmed the recorded age, {years_months_text(2000)}")
    expect(reader_2).to_contain_text("bob")
    # Side by side: reader 2's cell is right of reader 1's, on the same line.
    one, two = reader_1.bounding_box(), reader_2.bounding_box()
    assert two["x"] >= one["x"] + one["width"] - 1
    assert abs(two["y"] - one["y"]) < 2

    row.get_by_role("link", name="Adjudicate").click()
    _wait_ready(page, low.pk)
    expect(page.locator("#case-status")).to_contain_text("disputed")
    page.keyboard.press("e")
    expect(page.locator("#age-years")).to_be_focused()
    page.keyboard.type("6")
    page.keyboard.press("Tab")
    page.keyboard.type("1")
    page.keyboard.press("Enter")
    expect(page.locator("#case-status")).to_contain_text("adjudicated")
    low.refresh_from_db()
    assert (low.status, low.curated_age_days) == ("adjudicated", years_months_to_days(6, 1))

    history = page.locator("#history")
    expect(history).to_contain_text(
        f"lena adjudicated: corrected the age to {years_months_text(years_months_to_days(6, 1))}"
    )
    expect(history).to_contain_text(
        f"alice corrected the age to {years_months_text(2400)}; "
        "reason: “ossification centres” (first read)"
    )
    expect(history).to_contain_text("bob confirmed the recorded age")
    expect(history).to_contain_text("the case is now disputed")
    text = history.inner_text()
    assert "{" not in text, text
    assert "review.correct" not in text, text  # the decision shows once, in words

    page.goto(f"{live_server.url}/review/disputes/")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-image", str(unscored.pk))
