"""Label-error triage: how strongly an image's recorded age looks like a clerical error, from
more than its residual (issue 19, item 2).

Three kinds of evidence enter one likelihood model of the recorded age:

- the model's reading: the true age is spread around the prediction by a Laplace density whose
  scale is the one `services.outlier_score` divides by (the calibrated interval's reach on each
  side under the "interval" rule, else the model card's expected error);
- date plausibility: a recorded age made by a clerical slip sits at a known offset from the
  truth: a birth year off by 1 to 3 (365k days), a birth date's day and month swapped (the 132
  (day, month) pairs both at most 12), months typed as years (an age of exactly N years where
  the child is N months old), or anything else (uniform over 0-18 years);
- the same pseudonymous patient's other films: ingest shifts every date of a patient by one
  offset, so recorded ages must differ exactly as their (shifted) study dates do; a film that
  breaks step with its siblings is wrong, or they are.

Per patient, the birth day is unknown: the model sums over it, and over each sibling being
clean or wrong, so films are judged jointly (`_joint`). The stored score is the log posterior
odds of "this label is wrong", shifted and scaled so that a lone film with no clerical match
scores exactly `outlier_score` (the residual ratio the threshold and the docs speak of); other
evidence adds to it or takes from it, in the same units. Scores are floored at 0.

The score is stored in `Prediction.score` (the queue stays an index scan); a new film of a
patient rescores the patient's other films (`triage_rescore`). A film whose age a reviewer
gave (confirmed or corrected) is, for its siblings, that curated age and right: they are
judged against it, rescored with each decision (`triage_rescore_reviewed`); its own score stays
that of its recorded age (why it was flagged).
"""

import datetime as dt
import logging
import math
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import pydicom
from django.conf import settings
from django.db.models import Q

from inference_worker.ages import AGE_LIMIT_DAYS, DAYS_PER_MONTH, DAYS_PER_YEAR, MAX_AGE_YEARS
from portal.ingest.dicom import parse_date
from portal.ingest.models import Image
from portal.predictions.models import ModelVersion, Prediction
from portal.predictions.services import expected_error

log = logging.getLogger(__name__)

N = AGE_LIMIT_DAYS  # ages 0 .. N-1 days
# Prior share of wrong labels: 1-10% in registries; only the weight of siblings depends on it.
ERROR_RATE = 0.05
# Given a wrong label, how it came about (each where the dates allow it).
KIND_PRIOR = {
    "wrong_year": 0.3,
    "swapped_day_month": 0.3,
    "months_as_years": 0.3,
    "other": 0.1,
}
KIND_WORDS = {
    "wrong_year": "a birth year off by {years}",
    "swapped_day_month": "the birth date's day and month swapped",
    "months_as_years": "months typed as years",
    "other": "",
}
# Films of a patient judged together with each film: its nearest in study date.
MAX_SIBLINGS = 15
LN10 = math.log(10)  # a Laplace density's central 90% interval is its scale x ln(10) each side


@dataclass(frozen=True)
class Film:
    """What triage knows of one image: recorded age (days) and its resolution, the shifted
    study day (ordinal; None when unknown) and, where predicted, the reading's Laplace
    density: the prediction and its scale below and above it (days)."""

    key: int
    recorded: int
    resolution: int = 1
    study_day: int | None = None
    predicted: int | None = None
    scale_low: float = 1.0
    scale_high: float = 1.0
    # Score units per nat: 1 under the expected-error rule, ln(10) under the interval rule.
    nats_per_unit: float = 1.0
    # The age a reviewer gave (confirmed, corrected): as a sibling, the film is that age.
    curated: int | None = None


@dataclass
class Verdict:
    """A film's score and why: the dominant clerical kind (if any), the true age it implies,
    and how its siblings' recorded ages and study dates agree with it."""

    score: float
    nats: float = 0.0  # the log posterior odds of a wrong label
    kind: str | None = None
    years: int = 0
    implied_days: int | None = None
    siblings: int = 0
    # Days by which each disagreeing sibling's recorded age is off the study dates' interval.
    disagreeing: list[int] = field(default_factory=list)


@cache
def _delta_kernels() -> dict[str, np.ndarray]:
    """Probability of recorded - true = e (index e + N - 1) per kind, for the kinds that are a
    fixed offset: a birth year off by k (365 or 366 days a year, by how many Feb 29ths lie in
    between) and day/month swaps (a birth date (m, d) read as (d, m), each pair one day in a
    year)."""
    kernels = {}
    wrong = np.zeros(2 * N - 1)
    for k in (1, 2, 3):
        leap = k / 4  # the chance that a span of k years holds one more Feb 29
        for sign in (-1, 1):
            wrong[sign * 365 * k + N - 1] += (1 - leap) / 6
            wrong[sign * (365 * k + 1) + N - 1] += leap / 6
    kernels["wrong_year"] = wrong
    swap = np.zeros(2 * N - 1)
    for month in range(1, 13):
        for day in range(1, 13):
            if day != month:
                true = dt.date(2001, month, day)
                offset = (true - dt.date(2001, day, month)).days  # recorded - true age
                swap[offset + N - 1] += 1 / DAYS_PER_YEAR
    kernels["swapped_day_month"] = swap
    return kernels


@cache
def _whole_years_of_months() -> np.ndarray:
    """For each true age x: year_days(completed months of x), the age months-as-years records
    (-N where the months are outside 1-17, which that slip cannot produce in scope)."""
    ages = np.arange(N)
    months = (16 * (ages + 1) - 1) // 487  # `ages.completed_months`, vectorised
    out = np.full(N, -N, dtype=np.int64)
    ok = (months >= 1) & (months < MAX_AGE_YEARS)
    out[ok] = np.floor(months[ok] * DAYS_PER_YEAR).astype(np.int64)
    return out


def _window(values: np.ndarray, tolerance: int) -> np.ndarray:
    """Sum over a +-tolerance window: a coarse recorded age (PatientAge in weeks, months or
    years) matches every true age it could have been rounded from."""
    if tolerance <= 0:
        return values
    return np.convolve(values, np.ones(2 * tolerance + 1), mode="same")


def _reading(film: Film) -> np.ndarray:
    """Density of the true age over 0..N-1 days given the film's prediction (flat without)."""
    x = np.arange(N, dtype=float)
    if film.predicted is None:
        return np.full(N, 1.0 / N)
    below, above = film.scale_low, film.scale_high
    offset = x - film.predicted
    density = np.exp(-np.abs(offset) / np.where(offset >= 0, above, below))
    return density / (below + above)


def _tolerance(film: Film) -> int:
    return 0 if film.resolution <= 1 else int(film.resolution)


@cache
def _windowed_kernels(tolerance: int) -> dict[str, np.ndarray]:
    return {kind: _window(kernel, tolerance) for kind, kernel in _delta_kernels().items()}


def _components(film: Film) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Over true ages x: P(recorded | x, clean) and P(recorded | x, wrong by each kind)."""
    x = np.arange(N)
    tol = _tolerance(film)
    clean = (np.abs(film.recorded - x) <= tol).astype(float)
    offsets = film.recorded - x + N - 1  # index of recorded - x in the kernels
    wrong = {
        kind: KIND_PRIOR[kind] * kernel[offsets] for kind, kernel in _windowed_kernels(tol).items()
    }
    years = _whole_years_of_months()
    wrong["months_as_years"] = KIND_PRIOR["months_as_years"] * (
        np.abs(film.recorded - years) <= tol
    ).astype(float)
    wrong["other"] = np.full(N, KIND_PRIOR["other"] * (2 * tol + 1) / N)
    return clean, wrong


def _shifted(values: np.ndarray, shift: int) -> np.ndarray:
    """values[x + shift] for x in 0..N-1 (0 outside): a sibling's array on the film's axis."""
    out = np.zeros(N)
    if abs(shift) >= N:
        return out
    if shift >= 0:
        out[: N - shift] = values[shift:]
    else:
        out[-shift:] = values[: N + shift]
    return out


def _baseline_nats(film: Film) -> float:
    """ln of a lone film's posterior odds with only the uniform slip, less its residual term:
    subtracting it makes such a film's score its residual ratio."""
    odds = ERROR_RATE / (1 - ERROR_RATE)
    other = KIND_PRIOR["other"] * (2 * _tolerance(film) + 1) / N
    return math.log(odds * other * (film.scale_low + film.scale_high))


def _joint(film: Film, siblings: list[Film]) -> Verdict:
    """The film's score given its siblings (those with a study day, as the film has)."""
    if film.predicted is None:
        return Verdict(score=0.0, siblings=len(siblings))
    reading = _reading(film)
    clean, wrong = _components(film)
    # Product over siblings of P(sibling's record | film's true age x) on the film's axis.
    support = np.ones(N)
    disagreeing = []
    for sibling in siblings:
        shift = sibling.study_day - film.study_day
        s_reading = _reading(sibling)
        if sibling.curated is not None:  # a reviewer's age: right, to the day
            sibling = replace(sibling, recorded=sibling.curated, resolution=1)
            s_total = _components(sibling)[0]
        else:
            s_clean, s_wrong = _components(sibling)
            s_total = (1 - ERROR_RATE) * s_clean + ERROR_RATE * sum(s_wrong.values())
        support *= _shifted(s_reading * s_total, shift)
        gap = (sibling.recorded - film.recorded) - shift
        if abs(gap) > _tolerance(film) + _tolerance(sibling):
            disagreeing.append(gap)
    weighted = reading * support
    clean_mass = (1 - ERROR_RATE) * float(np.dot(clean, weighted))
    by_kind = {kind: ERROR_RATE * float(np.dot(values, weighted)) for kind, values in wrong.items()}
    wrong_mass = sum(by_kind.values())
    tiny = 1e-300
    nats = math.log(max(wrong_mass, tiny)) - math.log(max(clean_mass, tiny))
    score = max(0.0, (nats - _baseline_nats(film)) / film.nats_per_unit)
    verdict = Verdict(score=score, nats=nats, siblings=len(siblings), disagreeing=disagreeing)
    kind = max(by_kind, key=by_kind.get)
    if kind != "other" and by_kind[kind] > 0.5 * wrong_mass and wrong_mass > clean_mass:
        verdict.kind = kind
        implied = int(np.argmax(wrong[kind] * weighted))
        verdict.implied_days = implied
        verdict.years = round(abs(film.recorded - implied) / DAYS_PER_YEAR)
    elif disagreeing and wrong_mass > clean_mass:
        verdict.implied_days = int(np.argmax(sum(wrong.values()) * weighted))
    return verdict


def judge(films: list[Film], only: set[int] | None = None) -> dict[int, Verdict]:
    """Verdicts for the films of one patient (or a lone film), of those keyed in `only` when
    given: each judged with its nearest siblings in study date; films without a study day are
    judged alone."""
    dated = [f for f in films if f.study_day is not None]
    verdicts = {}
    for film in films:
        if only is not None and film.key not in only:
            continue
        siblings = []
        if film.study_day is not None:
            others = [f for f in dated if f.key != film.key]
            others.sort(key=lambda f: abs(f.study_day - film.study_day))
            siblings = others[:MAX_SIBLINGS]
        verdicts[film.key] = _joint(film, siblings)
    return verdicts


# ---- from the database ------------------------------------------------------------------


def _study_day(image: Image) -> int | None:
    """The stored (de-identified, date-shifted) file's study date as an ordinal day: shifts are
    per patient, so differences between a patient's films are the real intervals."""
    path = settings.DATA_DIR / image.file
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["StudyDate", "AcquisitionDate"]
        )
    except (OSError, pydicom.errors.InvalidDicomError, ValueError):
        return None
    day = parse_date(ds.get("StudyDate")) or parse_date(ds.get("AcquisitionDate"))
    return day.toordinal() if day else None


def film_of(
    *, image: Image, prediction: Prediction | None, card: dict, study_day: int | None
) -> Film:
    """One image as triage sees it; the reading's scale is the one `outlier_score` divides by.
    Its own score is of its recorded age; its curated age, where a reviewer gave one, is what
    its siblings are judged against."""
    base = {
        "key": image.pk,
        "recorded": image.age_days,
        "resolution": image.age_resolution_days or 1,
        "study_day": study_day,
        "curated": image.curated_age_days,
    }
    if prediction is None or prediction.age_days is None:
        return Film(**base)
    predicted = prediction.age_days
    low, high = prediction.interval_low_days, prediction.interval_high_days
    if low is not None and high is not None and settings.OUTLIER_RULE == "interval":
        return Film(
            **base,
            predicted=predicted,
            scale_low=max(predicted - low, 1) / LN10,
            scale_high=max(high - predicted, 1) / LN10,
            nats_per_unit=LN10,
        )
    months = expected_error(card=card, predicted_days=predicted, sex=image.sex).months
    scale = months * DAYS_PER_MONTH
    return Film(**base, predicted=predicted, scale_low=scale, scale_high=scale)


# What `film_of` reads of an image.
_IMAGE_FIELDS = ("pk", "age_days", "age_resolution_days", "curated_age_days", "sex", "file")


def _patients(version: ModelVersion, image_ids: list[int] | None):
    """(images by patient, predictions of `version` by image) for the patients of image_ids
    (every patient when None)."""
    images = Image.objects.only(*_IMAGE_FIELDS, "site_id", "patient_pseudonym")
    if image_ids is not None:
        keys = set(
            Image.objects.filter(pk__in=image_ids).values_list("site_id", "patient_pseudonym")
        )
        wanted = Q(pk__in=image_ids)
        for site_id, pseudonym in keys:
            if pseudonym:
                wanted |= Q(site_id=site_id, patient_pseudonym=pseudonym)
        images = images.filter(wanted)
    groups: dict[tuple, list[Image]] = {}
    for image in images.order_by("pk"):
        key = (image.site_id, image.patient_pseudonym or f"image-{image.pk}")
        groups.setdefault(key, []).append(image)
    predictions = {
        p.image_id: p
        for p in Prediction.objects.filter(
            model_version=version,
            error="",
            age_days__isnull=False,
            image_id__in=[i.pk for group in groups.values() for i in group],
        ).only("pk", "image_id", "age_days", "interval_low_days", "interval_high_days", "score")
    }
    return groups, predictions


def triage_rescore(
    *, version: ModelVersion, image_ids: list[int] | None = None, keep: frozenset[int] = frozenset()
) -> int:
    """Rewrite the triage scores of `version`'s predictions of these images and of every other
    film of their patients (all predictions when `image_ids` is None), except those of the
    images in `keep`. Returns how many changed."""
    groups, predictions = _patients(version, image_ids)
    predictions = {key: p for key, p in predictions.items() if key not in keep}
    changed = []
    for images in groups.values():
        if not any(i.pk in predictions for i in images):
            continue
        dated = len(images) > 1
        keys = {i.pk for i in images}
        films = [
            film_of(
                image=i,
                prediction=predictions.get(i.pk),
                card=version.card,
                study_day=_study_day(i) if dated else None,
            )
            for i in images
        ]
        for key, verdict in judge(films, only=set(predictions).intersection(keys)).items():
            prediction = predictions.get(key)
            if prediction is not None and prediction.score != verdict.score:
                prediction.score = verdict.score
                changed.append(prediction)
    Prediction.objects.bulk_update(changed, ["score"], batch_size=2000)
    return len(changed)


def triage_rescore_reviewed(*, image_id: int) -> int:
    """After a review decision: the patient's other films are judged again by every model
    version that read this image, against its curated age (or, excluded, without one). Its own
    score, of its recorded age, does not depend on the decision and stays."""
    versions = ModelVersion.objects.filter(
        pk__in=Prediction.objects.filter(image_id=image_id).values("model_version_id")
    )
    keep = frozenset({image_id})
    return sum(triage_rescore(version=v, image_ids=[image_id], keep=keep) for v in versions)


def triage_verdict(*, prediction: Prediction) -> Verdict | None:
    """Why a prediction scores what it does (for the explanation): its patient judged again."""
    if prediction.age_days is None:
        return None
    image = prediction.image
    version = prediction.model_version
    siblings = []
    if image.patient_pseudonym:
        siblings = list(
            Image.objects.filter(site_id=image.site_id, patient_pseudonym=image.patient_pseudonym)
            .exclude(pk=image.pk)
            .only(*_IMAGE_FIELDS)
        )
    readings = {
        p.image_id: p
        for p in Prediction.objects.filter(
            model_version=version, error="", image_id__in=[s.pk for s in siblings]
        ).only("pk", "image_id", "age_days", "interval_low_days", "interval_high_days")
    }
    dated = bool(siblings)
    films = [
        film_of(
            image=i,
            prediction=prediction if i.pk == image.pk else readings.get(i.pk),
            card=version.card,
            study_day=_study_day(i) if dated else None,
        )
        for i in [image, *siblings]
    ]
    return judge(films, only={image.pk})[image.pk]
