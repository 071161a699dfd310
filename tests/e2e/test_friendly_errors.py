"""Friendly errors and roles in the browser: refusals come as pages in the portal's frame that
say what to do, the new-set form keeps what was typed and shows the error by its field, the
menu offers only what the role can use, and the upload page's pickers answer the keyboard."""

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.test_accessibility import login
from tests.portal import factories as f

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MENU = ["Home", "Review queue", "Images", "New upload", "Uploads", "Jobs", "Validation sets"]


@pytest.fixture
def team():
    north = f.site("north")
    f.user("lena", "lead", north)
    f.user("rita", "reviewer", north)
    f.user("ulla", "uploader", north)
    f.image(north)
    return north


def _menu(page: Page) -> list[str]:
    return page.locator("nav[aria-label='Main menu'] a").all_inner_texts()


def test_the_menu_offers_only_what_the_role_can_use(browser: Browser, live_server, team):
    lead = _menu(login(browser, live_server, "lena"))
    assert [x for x in lead if x in MENU] == MENU
    assert {"Audit", "Team"} <= set(lead)

    reviewer = _menu(login(browser, live_server, "rita"))
    assert "Review queue" in reviewer
    assert not {"New upload", "Audit", "Team"} & set(reviewer)

    uploader = _menu(login(browser, live_server, "ulla"))
    assert "New upload" in uploader
    assert not {"Review queue", "Audit", "Team"} & set(uploader)


def test_refusals_are_pages_in_the_frame_that_say_what_to_do(browser: Browser, live_server, team):
    url = live_server.url
    reviewer = login(browser, live_server, "rita")
    response = reviewer.goto(f"{url}/uploads/new/")
    assert response.status == 403
    expect(reviewer.locator("h1")).to_have_text("You cannot do this here")
    expect(reviewer.locator("#reason")).to_contain_text("uploader or lead role")
    expect(reviewer.locator("nav[aria-label='Main menu']")).to_be_visible()
    expect(reviewer.locator("main")).to_contain_text("ask a lead of the site")

    # A cursor that names no page of the image list: the page to start again from.
    response = reviewer.goto(f"{url}/images/?cursor=not-a-cursor")
    assert response.status == 404
    expect(reviewer.locator("h1")).to_have_text("Not found")
    expect(reviewer.locator("#reason")).to_contain_text("invalid cursor")
    reviewer.click("#without-query")
    expect(reviewer.locator("h1")).to_have_text("Images")

    response = reviewer.goto(f"{url}/no-such-page/")
    assert response.status == 404
    expect(reviewer.locator("h1")).to_have_text("Not found")
    expect(reviewer.locator("nav[aria-label='Main menu']")).to_be_visible()

    # The API keeps its JSON answers.
    answer = reviewer.request.get(f"{url}/api/no-such-thing/")
    assert answer.status == 404
    assert answer.json() == {"detail": "Not found."}


def test_a_report_asked_for_with_no_model_says_so_on_the_set_page(
    browser: Browser, live_server, admin_user
):
    version = f.frozen_set("east", reviewer=admin_user)
    page = login(browser, live_server, "lead", "lead-password-123")
    page.goto(f"{live_server.url}/validation-sets/{version.validation_set.name}/")
    expect(page.locator("#report-form select[name=model]")).to_contain_text("none registered")
    page.click("#report-form button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"Validation set {version.validation_set.name}")
    expect(page.locator(".messages li.error")).to_contain_text("Choose a model for the report")


def test_the_new_set_form_keeps_the_values_and_shows_the_error_by_its_field(
    browser: Browser, live_server, team
):
    page = login(browser, live_server, "lena")
    page.goto(f"{live_server.url}/validation-sets/")
    page.fill("#set-name", "spring")
    page.check("#set-form input[name=sites][value=north]")
    page.fill("#set-min-age", "900")
    page.fill("#set-max-age", "400")
    page.select_option("#set-sex", "F")
    page.fill("#set-form textarea[name=description]", "girls, school age")
    page.click("#set-form button[type=submit]")

    expect(page.locator("#form-errors")).to_contain_text("The set was not created")
    expect(page.locator("#error-max_age_days")).to_have_text("the minimum age is above the maximum")
    expect(page.locator("#set-max-age")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#set-max-age")).to_have_attribute("aria-describedby", "error-max_age_days")
    expect(page.locator("#set-name")).not_to_have_attribute("aria-invalid", "true")
    # Nothing typed is lost.
    expect(page.locator("#set-name")).to_have_value("spring")
    expect(page.locator("#set-form input[name=sites][value=north]")).to_be_checked()
    expect(page.locator("#set-min-age")).to_have_value("900")
    expect(page.locator("#set-max-age")).to_have_value("400")
    expect(page.locator("#set-sex")).to_have_value("F")
    expect(page.locator("#set-form textarea[name=description]")).to_have_value("girls, school age")
    # An error is red, never the green of a success.
    colour = page.locator("#form-errors").evaluate("e => getComputedStyle(e).color")
    assert colour == "rgb(138, 0, 22)"

    page.fill("#set-max-age", "1200")
    page.click("#set-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Validation set spring")


def _chooser_by_key(page, key: str):
    """The file chooser that `key` opens on the focused picker, pressed up to three times
    before the test fails. The page must already intercept choosers (`_intercept_choosers`)."""
    for attempt in range(3):
        try:
            with page.expect_file_chooser(timeout=5000) as chooser:
                page.keyboard.press(key)
            return chooser.value
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _intercept_choosers(page) -> None:
    """Keep Playwright intercepting the page's file choosers from now on. On its own each
    `expect_file_chooser` turns interception on without waiting for it (a fire-and-forget
    subscription) and off again when it ends, so a key press can beat it and its chooser go
    unreported: in one clean-clone CI run none of three presses was. A listener that stays
    keeps interception on from before the page loads."""
    page.on("filechooser", lambda _chooser: None)


def test_the_upload_pickers_are_reached_and_opened_by_keyboard(
    browser: Browser, live_server, team, tmp_path
):
    page = login(browser, live_server, "ulla")
    _intercept_choosers(page)
    page.goto(f"{live_server.url}/uploads/new/")
    expect(page.locator("#upload-app")).to_have_attribute("data-ready", "true")
    # Chromium opens a file chooser only for the tab in front (one left by an earlier test
    # would otherwise be, now and then).
    page.bring_to_front()
    page.focus("#site")
    page.keyboard.press("Tab")
    expect(page.locator("#pick-files")).to_be_focused()
    chooser = _chooser_by_key(page, "Enter")
    (tmp_path / "a.dcm").write_bytes(b"x")
    chooser.set_files(str(tmp_path / "a.dcm"))
    expect(page.locator("#selection")).to_contain_text("1 files chosen")
    page.keyboard.press("Tab")
    expect(page.locator("#pick-folder")).to_be_focused()
    assert _chooser_by_key(page, " ").is_multiple()
    page.keyboard.press("Tab")
    expect(page.locator("#start")).to_be_focused()
