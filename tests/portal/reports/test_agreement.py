"""The report's reader agreement: computed from the frozen set's double reads made before the
freeze, beside the model's error on the same films, and shown on the page, the HTML file and
the PDF; absent where no film was double read."""

import io

import pytest
from django.template.loader import render_to_string
from pypdf import PdfReader

from inference_worker import agreement
from inference_worker.ages import DAYS_PER_MONTH
from portal.reports import render
from portal.reports.services import report_compute, report_create, report_points
from portal.review.services import review_submit
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

# (recorded age, first read, second read, model's prediction): reads within the 3-month
# double-read tolerance settle the film; None is an exclusion (disputed, then adjudicated).
FILMS = [
    (200, 210, 250, 260),
    (500, 480, 540, 470),
    (800, 820, 800, 900),
    (1300, 1300, 1380, 1250),
    (2500, 2440, 2500, 2600),
    (3000, 3060, 3010, 2900),
    (4500, 4490, 4560, 4700),
    (5200, 5230, 5150, 5100),
    (3300, 3320, None, 3000),  # excluded by the second reader: left out, counted
]


def decide(user, image, decision: str, age: int | None = None) -> None:
    image.refresh_from_db()
    review_submit(
        image=image,
        reviewer=user,
        decision=decision,
        age_days=age,
        reason="other" if decision == "exclude" else "",
        comment="",
        expected_revision=image.revision,
    )


def double_read_world(settings):
    settings.REVIEW = {**settings.REVIEW, "DOUBLE_READ_TOLERANCE_MONTHS": 3}
    east = f.site("east", double_reading=True)
    alice, bob = f.user("alice", "reviewer", east), f.user("bob", "reviewer", east)
    lead = f.user("lena", "lead", east)
    model = f.model_version("m1")
    images = []
    for i, (recorded, first, second, predicted) in enumerate(FILMS):
        image = f.image(east, age_days=recorded, sex="MF"[i % 2])
        f.prediction(image, model, age_days=predicted)
        decide(alice, image, "correct", first)
        if second is None:
            decide(bob, image, "exclude")
            decide(lead, image, "correct", first)  # the lead adjudicates the dispute
        else:
            decide(bob, image, "correct", second)
        images.append(image)
    chosen = validation_set_create(name="east-set", sites=[east], user=lead)
    frozen = validation_set_freeze(validation_set=chosen, user=lead)
    return {"frozen": frozen, "model": model, "images": images, "lead": lead, "alice": alice}


@pytest.mark.django_db
def test_the_report_scores_the_double_reads_beside_the_model_and_later_reads_change_nothing(
    settings,
):
    world = double_read_world(settings)
    report = report_create(version=world["frozen"], model=world["model"], build=False)
    report.resamples = 200
    result = report_compute(report=report)
    section = result["agreement"]

    pairs = [film for film in FILMS if film[2] is not None]
    firsts, seconds = [p[1] for p in pairs], [p[2] for p in pairs]
    curated = [round((p[1] + p[2]) / 2) for p in pairs]  # agreed corrections: their mean
    expected = agreement.agreement(firsts, seconds, curated, resamples=200, seed=0)
    assert section["n"] == 8
    assert section["excluded_pairs"] == 1
    for name in ("mae_between_readers_months", "icc"):
        assert section[name] == expected[name]
    assert section["bland_altman"] == expected["bland_altman"]
    assert set(section["bland_altman"]) == {"bias", "lower", "upper"}
    assert section["bland_altman"]["bias"]["ci_low"] < section["bland_altman"]["bias"]["value"]
    assert list(section["by_group"]) == ["0-1", "1-3", "3-6", "6-12", "12-18"]
    # Curated 230 | 510, 810 | 1340 | 2470, 3035 | 4525, 5190 days.
    assert [g["n"] for g in section["by_group"].values()] == [1, 2, 1, 2, 2]
    # The model's error on the same double-read films, beside the readers'.
    model_mae = sum(abs(p[3] - c) for p, c in zip(pairs, curated, strict=True)) / 8
    assert section["model_mae_months"] == {
        "value": pytest.approx(model_mae / DAYS_PER_MONTH),
        "n": 8,
    }

    # Reads after the freeze (a new double-read film, an adjudication) change nothing.
    late = f.image(world["images"][0].site, age_days=900)
    decide(world["alice"], late, "correct", 950)
    decide(world["lead"], world["images"][1], "correct", 700)
    assert report_compute(report=report)["agreement"] == section


@pytest.mark.django_db
def test_the_page_and_html_file_show_the_agreement_table(settings):
    world = double_read_world(settings)
    report = report_create(version=world["frozen"], model=world["model"], build=False)
    report.resamples = 50
    result = report_compute(report=report)
    points = report_points(report=report).as_dict()
    context = render.html_context(result, points)
    (table,) = [t for t in context["tables"] if t["kind"] == "agreement"]
    assert table["rows"][0][:2] == ["overall", "8 †"]
    icc = f"{result['agreement']['icc']['value']:.3f}"
    assert table["rows"][0][3].startswith(icc)
    html = render_to_string("reports/report_file.html", context)
    assert 'data-kind="agreement"' in html
    assert "ICC(A,1)" in html
    assert any(
        line.startswith("Reader agreement on 8 double-read films") for line in context["summary"]
    )


@pytest.mark.slow  # WeasyPrint lays out the whole report
@pytest.mark.django_db
def test_the_pdf_shows_the_agreement_table(settings):
    world = double_read_world(settings)
    report = report_create(version=world["frozen"], model=world["model"], build=False)
    report.resamples = 50
    result = report_compute(report=report)
    icc = f"{result['agreement']['icc']['value']:.3f}"
    points = report_points(report=report).as_dict()
    text = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(render.to_pdf(result, points))).pages
    )
    assert "Reader agreement" in text
    assert icc in text


@pytest.mark.django_db
def test_a_set_without_double_reads_has_no_agreement_section():
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    model = f.model_version("m1")
    for age in (400, 900, 3000):
        image = f.image(north, age_days=age)
        f.prediction(image, model, age_days=age + 30)
        decide(lead, image, "confirm")
    frozen = validation_set_freeze(
        validation_set=validation_set_create(name="n", sites=[north], user=lead), user=lead
    )
    report = report_create(version=frozen, model=model, build=False)
    result = report_compute(report=report)
    assert result["agreement"] is None
    context = render.html_context(result, report_points(report=report).as_dict())
    assert not [t for t in context["tables"] if t["kind"] == "agreement"]
