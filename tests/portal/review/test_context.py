"""A case's context: the sentence saying why it is in the queue (from the one reading of the
model card's expected error), ages in years and months on the pages, the queue's sex and
residual columns and "case n of N", and the same patient's other films of the site."""

import pytest
from django.template import Context, Template
from django.utils.html import escape
from rest_framework.test import APIClient

from inference_worker.ages import years_months_to_days
from portal.predictions.services import expected_error, outlier_score
from portal.review import selectors
from portal.review.explain import why_in_queue
from tests.portal import factories as f

CARD = {"expected_error_months": {"overall": 6.0, "0-1 M": 2.0, "0-1 F": 2.5}}


def test_the_sentence_says_why_in_words_and_numbers_with_ages_in_years_and_months():
    # A boy recorded at 2 months whom the model reads at 10 months: 8 months older, four
    # times the 2-month error the card gives for boys under 1.
    recorded, predicted = years_months_to_days(0, 2), years_months_to_days(0, 10)
    text = why_in_queue(
        recorded_days=recorded, predicted_days=predicted, sex="M", card=CARD, threshold=2.0
    )
    assert text == (
        "The model reads 0 y 10 m against a recorded 0 y 2 m, 8.0 months (0 y 8 m) older: "
        "4.0x the expected 2.0-month error for boys under 1 year, above the queue's "
        "threshold of 2 times."
    )


def test_the_sentence_s_ratio_is_the_score_and_names_the_figure_it_divides_by():
    recorded, predicted = 2500, 1000  # a girl the model reads younger, aged 1 to 3
    score = outlier_score(card=CARD, predicted_days=predicted, recorded_days=recorded, sex="F")
    text = why_in_queue(
        recorded_days=recorded, predicted_days=predicted, sex="F", card=CARD, threshold=9.0
    )
    assert f"{score:.1f}x the expected 6.0-month error over all ages" in text
    assert "younger" in text
    assert "not above the queue's threshold of 9 times" in text
    assert expected_error(card=CARD, predicted_days=predicted, sex="F").source == "overall"
    girl = expected_error(card=CARD, predicted_days=100, sex="F")
    assert (girl.months, girl.group, girl.sex, girl.source) == (2.5, "0-1", "F", "group")
    assert expected_error(card={}, predicted_days=100, sex="F").source == "none"
    assert "girls aged" not in text
    older = why_in_queue(recorded_days=400, predicted_days=1200, sex="F", card={}, threshold=2)
    assert "1-month stand-in" in older


def test_under_the_interval_rule_the_sentence_speaks_of_the_calibrated_interval(settings):
    settings.OUTLIER_RULE = "interval"
    predicted, interval = years_months_to_days(5, 0), (1500, 2300)  # 4 y 1 m to 6 y 3 m
    outside = years_months_to_days(8, 0)
    text = why_in_queue(
        recorded_days=outside, predicted_days=predicted, sex="M", card=CARD, threshold=1.0,
        interval=interval,
    )  # fmt: skip
    score = outlier_score(
        card=CARD, predicted_days=predicted, recorded_days=outside, sex="M", interval=interval
    )
    assert score > 1
    assert "the recorded age is outside the model's calibrated interval of 4 y 1 m to 6 y 3 m" in (
        text
    )
    assert f"at {score:.1f}x the interval's reach on its side" in text
    assert "expected" not in text
    assert "above the queue's threshold of 1 times" in text
    inside = why_in_queue(
        recorded_days=2000, predicted_days=predicted, sex="M", card=CARD, threshold=1.0,
        interval=interval,
    )  # fmt: skip
    assert "inside the model's calibrated interval" in inside
    assert "not above" in inside
    # Without a calibration, the card's expected error, as under the default rule.
    assert "expected 6.0-month error" in why_in_queue(
        recorded_days=outside, predicted_days=predicted, sex="M", card=CARD, threshold=1.0
    )


@pytest.mark.parametrize(
    ("template", "context", "shown"),
    [
        ("{{ d|age }}", {"d": 0}, "0 y 0 m"),
        ("{{ d|age }}", {"d": 365}, "1 y 0 m"),
        ("{{ d|age }}", {"d": None}, ""),
        ("{{ d|residual }}", {"d": -731}, "−24.0 months"),
    ],
)
def test_pages_write_ages_in_years_and_months(template, context, shown):
    assert Template("{% load ages %}" + template).render(Context(context)) == shown


@pytest.mark.django_db
def test_queue_rows_carry_sex_residual_and_why_and_hide_them_from_a_blind_reader():
    north, blind = f.site("north"), f.site("blind", blind_reading=True)
    rita = f.user("rita", "reviewer", north, blind)
    version = f.model_version(card=CARD)
    seen = f.image(north, age_days=60, sex="M")
    f.prediction(seen, version, age_days=304)
    hidden = f.image(blind, age_days=60, sex="F")
    f.prediction(hidden, version, age_days=700)

    client = APIClient()
    client.force_authenticate(rita)
    rows = {r["image"]: r for r in client.get("/api/review/queue/").json()["results"]}
    assert rows[seen.pk]["sex"] == "M"
    assert rows[seen.pk]["residual_days"] == 244
    assert rows[seen.pk]["recorded_age_days"] == 60  # the API keeps days
    assert rows[seen.pk]["why"].startswith("The model reads 0 y 10 m against a recorded 0 y 2 m")
    assert rows[hidden.pk]["sex"] == "F"
    assert {"why", "residual_days", "score", "predicted_age_days"}.isdisjoint(rows[hidden.pk])

    detail = client.get(f"/api/images/{seen.pk}/").json()
    assert detail["why"] == rows[seen.pk]["why"]
    assert "why" not in client.get(f"/api/images/{hidden.pk}/").json()

    client.force_login(rita)
    page = client.get("/review/").content.decode()
    assert "hidden until you decide" in page
    assert escape(rows[seen.pk]["why"]) in page
    assert "0 y 10 m" in page
    assert "+8.0 months" in page
    assert "304 d" not in page


@pytest.mark.django_db
def test_case_n_of_n_counts_the_queue_the_reader_sees():
    north = f.site("north")
    rita = f.user("rita", "reviewer", north)
    version = f.model_version(card={"expected_error_months": {"overall": 6.0}})
    images = []
    for months in (40, 30, 20):  # scores 6.8, 5.1, 3.4 (threshold 2): highest first
        img = f.image(north, age_days=2000)
        f.prediction(img, version, age_days=2000 + months * 31)
        images.append(img)
    queue = selectors.QueueFilters()
    assert selectors.queue_position(user=rita, filters=queue, image=images[1]) == (2, 3)
    assert selectors.queue_position(user=rita, filters=queue, image=images[0]) == (1, 3)
    outside = f.image(north, age_days=2000)
    assert selectors.queue_position(user=rita, filters=queue, image=outside) == (None, 3)

    client = APIClient()
    client.force_login(rita)
    page = client.get(f"/images/{images[1].pk}/?queue=1").content.decode()
    assert "Case 2 of 3 in your queue" in page
    listing = client.get("/review/?limit=1").content.decode()
    assert "1 of 3" in listing
    assert "3 cases in the queue" in listing


@pytest.mark.django_db
def test_other_films_are_the_same_patients_of_the_same_site_and_the_reader_s_sites():
    north, south = f.site("north"), f.site("south")
    rita = f.user("rita", "reviewer", north)
    lead = f.user("lena", "lead", north, south)
    film = f.image(north, age_days=400)
    earlier = f.image(north, age_days=100)
    stranger = f.image(north, age_days=500)
    elsewhere = f.image(south, age_days=300)
    for img in (film, earlier, elsewhere):
        img.patient_pseudonym = "PX"
        img.save(update_fields=["patient_pseudonym"])
    # "PX" on south is another patient: pseudonyms are keyed per site.
    assert [o["id"] for o in selectors.patient_films(user=rita, image=film)] == [earlier.pk]
    assert [o["id"] for o in selectors.patient_films(user=lead, image=film)] == [earlier.pk]
    assert selectors.patient_films(user=rita, image=stranger) == []

    client = APIClient()
    client.force_authenticate(rita)
    films = client.get(f"/api/images/{film.pk}/").json()["other_films"]
    assert films == [
        {
            "id": earlier.pk,
            "recorded_age_days": 100,
            "view_position": "PA",
            "dicom_url": f"/api/images/{earlier.pk}/dicom/",
            "wado_rs_url": earlier.wado_rs_path,
        }
    ]
