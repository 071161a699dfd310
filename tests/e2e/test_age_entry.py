"""Corrected ages typed into the viewer's form are stored as the days of the one age rule and
shown back as typed (frontend/src/ages.ts, inference_worker/ages.py; the full table of entries
is proven by the unit tests, these are three through the real browser)."""

import pytest
from playwright.sync_api import Browser, expect

from inference_worker.ages import age_group, years_months_to_days
from portal.review.models import Review
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The first day of a group's year (1 y 0 m: 365 days, in 1-3, never 0-1), a month that
# ordinary rounding stored a month short, and the last month in scope.
ENTRIES = [(1, 0, "1-3"), (5, 7, "3-6"), (17, 11, "12-18")]


def test_three_corrections_typed_in_the_viewer_show_back_unchanged(browser: Browser, live_server):
    north = f.site("north")
    f.user("rita", "reviewer", north)
    images = [f.image(north, age_days=4000, dicom=True) for _ in ENTRIES]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/accounts/login/?next=/images/{images[0].pk}/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", f.PASSWORD)
    page.click("button[type=submit]")

    for image, (years, months, group) in zip(images, ENTRIES, strict=True):
        page.goto(f"{live_server.url}/images/{image.pk}/")
        app = page.locator("#viewer-app")
        expect(app).to_have_attribute("data-image-id", str(image.pk))
        expect(app).to_have_attribute("data-ready", "true", timeout=60_000)
        page.click("#btn-correct")
        page.fill("#age-years", str(years))
        page.fill("#age-months", str(months))
        page.press("#age-months", "Enter")
        expect(page.locator("#case-status")).to_have_text("corrected")
        shown = f"{years} y {months} m"
        expect(page.locator("#curated-age")).to_have_text(shown)
        expect(page.locator("#history")).to_contain_text(f"corrected the age to {shown}")

        days = years_months_to_days(years, months)
        assert Review.objects.get(image=image).age_days == days
        image.refresh_from_db()
        assert (image.status, image.curated_age_days) == ("corrected", days)
        assert age_group(days) == group
        # A fresh load shows the stored age the same way.
        page.reload()
        expect(page.locator("#curated-age")).to_have_text(shown)
