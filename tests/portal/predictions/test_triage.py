"""Label-error triage (`portal.predictions.triage`): each signal on films made through the real
ingest path (de-identified, dates shifted per patient), scored by the portal's own store of a
worker's answer, and explained by the queue's sentence."""

import datetime as dt

import pytest

from inference_worker.ages import month_days, year_days
from portal.ingest.models import Image
from portal.predictions.models import Prediction
from portal.predictions.services import outlier_score, prediction_results_store
from portal.predictions.triage import Film, judge
from portal.review.selectors import prediction_why
from portal.review.services import review_submit
from tests.portal import factories as f

pytestmark = pytest.mark.django_db

CARD = {"expected_error_months": {"overall": 2.0}}


def _days(birth: str, study: str) -> int:
    def day(text: str) -> dt.date:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))

    return (day(study) - day(birth)).days


def _predict(version, readings: dict[Image, int]) -> dict[int, Prediction]:
    """Store a worker's answer (the portal's own path) and return the version's predictions."""
    results = [
        {"image": image.pk, "age_days": days, "heatmap": "", "ms": {}}
        for image, days in readings.items()
    ]
    prediction_results_store(answer={"job": None, "model": version.name, "results": results})
    return {
        p.image_id: p
        for p in Prediction.objects.filter(model_version=version).select_related(
            "image", "model_version"
        )
    }


def test_a_day_month_swap_ranks_above_a_clean_label_with_the_same_residual(site, tmp_path):
    version = f.model_version(card=CARD)
    # Born 10 March 2015; the second film's birth date was typed 3 October (day and month
    # swapped). The first film, half a year earlier, has it right.
    swapped_first = f.ingested(site, tmp_path, birth="20150310", study="20190601", patient="A")
    swapped = f.ingested(site, tmp_path, birth="20151003", study="20200115", patient="A")
    clean_first = f.ingested(site, tmp_path, birth="20150620", study="20190601", patient="B")
    clean = f.ingested(site, tmp_path, birth="20150620", study="20200115", patient="B")
    true_age = _days("20150310", "20200115")
    residual = true_age - swapped.age_days
    assert residual == 207  # what the swap did
    stored = _predict(
        version,
        {
            swapped_first: swapped_first.age_days,
            swapped: true_age,  # the model reads the true age
            clean_first: clean_first.age_days,
            clean: clean.age_days + residual,  # the same residual, from the model's own error
        },
    )

    assert stored[swapped.pk].residual_days == stored[clean.pk].residual_days
    assert stored[swapped.pk].score > stored[clean.pk].score
    # Of the patient's two films that disagree, the one the model and the swap explain.
    assert stored[swapped.pk].score > stored[swapped_first.pk].score
    why = prediction_why(stored[swapped.pk], card=CARD)
    assert "day and month swapped" in why
    assert "disagrees with the study dates of 1 of the patient's 1 other film" in why
    assert "agrees with the study dates of the patient's 1 other film" in prediction_why(
        stored[clean.pk], card=CARD
    )


def test_an_age_of_exactly_n_years_read_as_n_months_ranks_above_the_same_residual(site, tmp_path):
    version = f.model_version(card=CARD)
    # Recorded exactly 5 years old (born 15 January 2015, seen 15 January 2020), read as a
    # 5-month-old: months typed as years. A film 3 days off a whole year, read with the same
    # residual, has nothing but its residual.
    typed = f.ingested(site, tmp_path, birth="20150115", study="20200115", patient="M")
    other = f.ingested(site, tmp_path, birth="20150112", study="20200115", patient="N")
    assert typed.age_days == year_days(5)
    reading = month_days(5) + 10
    stored = _predict(version, {typed: reading, other: other.age_days + reading - typed.age_days})

    assert stored[typed.pk].residual_days == stored[other.pk].residual_days
    assert stored[typed.pk].score > stored[other.pk].score
    # A lone film that no slip explains scores its residual ratio, the queue's old order (less
    # a little: 3% of the reading's spread falls below age 0, where no true age can be).
    ratio = outlier_score(
        card=CARD, predicted_days=stored[other.pk].age_days, recorded_days=other.age_days, sex="F"
    )
    assert stored[other.pk].score == pytest.approx(ratio, abs=0.05)
    assert "exactly 5 years" in prediction_why(stored[typed.pk], card=CARD)


def test_a_new_film_of_the_patient_rescores_the_others(site, tmp_path):
    version = f.model_version(card=CARD)
    # Born 20 May 2014, the first film's birth year typed 2015; the model reads the truth.
    wrong = f.ingested(site, tmp_path, birth="20150520", study="20200115", patient="W")
    true_age = _days("20140520", "20200115")
    before = _predict(version, {wrong: true_age})[wrong.pk].score
    # A year later the patient comes back with the right birth date: the two films' ages no
    # longer step with their study dates, by exactly a year.
    later = f.ingested(site, tmp_path, birth="20140520", study="20210115", patient="W")
    assert later.patient_pseudonym == wrong.patient_pseudonym
    after = _predict(version, {later: later.age_days})

    assert after[wrong.pk].score > before
    assert after[wrong.pk].score > after[later.pk].score
    assert "birth year off by 1 year" in prediction_why(after[wrong.pk], card=CARD)


def test_a_film_that_steps_with_its_siblings_dates_scores_below_its_residual_alone():
    reading = {"scale_low": 61.0, "scale_high": 61.0}
    film = Film(key=1, recorded=2000, study_day=10_000, predicted=2000 + 300, **reading)
    siblings = [
        Film(key=2, recorded=1500, study_day=9_500, predicted=1500, **reading),
        Film(key=3, recorded=1000, study_day=9_000, predicted=1000, **reading),
    ]
    alone = judge([Film(**{**film.__dict__, "study_day": None})])[1]
    together = judge([film, *siblings])

    assert together[1].score < alone.score
    assert together[1].disagreeing == []
    assert together[1].siblings == 2


def test_coarse_ages_agree_with_the_dates_within_their_resolution():
    # PatientAge in weeks: each recorded age is a rounding, so 3 days off the dates is no gap.
    weekly = {"resolution": 7, "scale_low": 61.0, "scale_high": 61.0}
    films = [
        Film(key=1, recorded=1400, study_day=5_000, predicted=1400, **weekly),
        Film(key=2, recorded=1400 + 364, study_day=5_000 + 367, predicted=1767, **weekly),
    ]
    verdicts = judge(films)
    assert verdicts[1].disagreeing == verdicts[2].disagreeing == []
    exact = [Film(**{**film.__dict__, "resolution": 1}) for film in films]
    assert judge(exact)[1].disagreeing == [-3]  # to the day, 3 days are a gap


def test_a_reviewers_curated_age_anchors_the_siblings():
    reading = {"scale_low": 200.0, "scale_high": 200.0}
    # The sibling's record steps off the film's by a year; the model cannot tell which is wrong.
    film = Film(key=1, recorded=3000, study_day=10_000, predicted=3000 + 180, **reading)
    sibling = Film(key=2, recorded=2500 + 365, study_day=9_500, predicted=2500 + 180, **reading)
    unsure = judge([film, sibling])
    # A reviewer corrected the sibling to 2500 days: the film steps with it after all.
    corrected = judge([film, Film(**{**sibling.__dict__, "curated": 2500})])
    # A reviewer confirmed the sibling's record: the film is the one a year off.
    confirmed = judge([film, Film(**{**sibling.__dict__, "curated": sibling.recorded})])

    assert corrected[1].score < unsure[1].score < confirmed[1].score
    assert confirmed[1].kind == "wrong_year"
    assert corrected[1].disagreeing == []
    assert confirmed[1].disagreeing == [365]
    # Its own score is of its recorded age, whatever a reviewer said of it.
    assert confirmed[2].score == unsure[2].score


def test_a_review_decision_rescores_the_patients_other_films(site, tmp_path):
    version = f.model_version(card=CARD)
    # Born 20 May 2014; the later film's birth year was typed 2015, the earlier one is right.
    # The model reads both a little old, so neither stands out on its own.
    right = f.ingested(site, tmp_path, birth="20140520", study="20200115", patient="R")
    wrong = f.ingested(site, tmp_path, birth="20150520", study="20210115", patient="R")
    true_later = _days("20140520", "20210115")
    before = _predict(version, {right: right.age_days + 200, wrong: true_later - 150})
    reviewer = f.user("rhea", "reviewer", site)

    right.refresh_from_db()
    review_submit(
        image=right,
        reviewer=reviewer,
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=right.revision,
    )

    after = {p.image_id: p for p in Prediction.objects.filter(model_version=version)}
    assert after[wrong.pk].score > before[wrong.pk].score
    assert after[right.pk].score == before[right.pk].score  # why it was flagged, still
