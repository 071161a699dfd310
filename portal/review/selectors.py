"""Reads of the review area: the outlier queue, the image browser, an image's reviews and
history. Everything is scoped to the user's sites (`portal.accounts.selectors.site_scope`)."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from inference_worker.ages import AGE_LIMIT_DAYS, MAX_AGE_YEARS, SEXES, group_days
from portal.accounts.models import LEAD_ROLES, REVIEW_ROLES, AuditEvent
from portal.accounts.selectors import has_role, holds_role_anywhere, role_on, site_scope
from portal.core.numbers import finite_number, whole_number
from portal.ingest.models import Image, ReviewStatus, Site
from portal.predictions import blind
from portal.predictions.models import ModelVersion, Prediction
from portal.predictions.selectors import image_data, latest_prediction
from portal.predictions.triage import triage_verdict
from portal.review import history
from portal.review.explain import why_in_queue
from portal.review.models import Kind, Review
from portal.review.rules import ReviewError, decision_kind

# Cases a reviewer can take from the queue; disputed cases are offered to leads.
OPEN_STATUSES = (ReviewStatus.UNREVIEWED, ReviewStatus.AWAITING_SECOND_READ, ReviewStatus.DISPUTED)


class FilterError(ValueError):
    """A filter value that cannot be understood (HTTP 400); the message names the parameter."""


def age_group_days(text: str, parameter: str = "age_group") -> tuple[int, int]:
    """`LOW-HIGH` in years (plain decimals, 0 <= LOW < HIGH <= 18) as the half-open interval
    of whole days that `ages.group_days` gives: the boundaries reports and metrics use too."""
    parts = text.split("-")
    bounds = [finite_number(part, low=0, high=MAX_AGE_YEARS) for part in parts]
    if len(bounds) != 2 or None in bounds or bounds[0] >= bounds[1]:
        raise FilterError(
            f"{parameter} {text!r}: expected LOW-HIGH in years with 0 <= LOW < HIGH <= "
            f"{MAX_AGE_YEARS}, e.g. 1-3"
        )
    return group_days(*bounds)


def _check_sex(sex: str | None) -> None:
    if sex and sex not in SEXES:
        raise FilterError(f"sex must be {', '.join(SEXES[:-1])} or {SEXES[-1]}")


@dataclass(frozen=True)
class QueueFilters:
    site: str | None = None
    sex: str | None = None
    age_group: str | None = None  # "1-3": the recorded age, in years, [low, high)
    status: str | None = None

    @classmethod
    def from_query(cls, query) -> "QueueFilters":
        values = {key: (query.get(key) or None) for key in ("site", "sex", "age_group", "status")}
        filters = cls(**values)
        filters.age_range_days()
        _check_sex(filters.sex)
        if filters.status and filters.status not in OPEN_STATUSES:
            raise FilterError(f"unknown status {filters.status!r}: the queue holds open cases")
        return filters

    def age_range_days(self) -> tuple[int, int] | None:
        return age_group_days(self.age_group) if self.age_group else None

    def as_query(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


def queue_threshold() -> float:
    return settings.REVIEW["QUEUE_THRESHOLD"]


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def image_scope(*, user) -> QuerySet[Image]:
    """The images of the user's sites; another site's image is not found."""
    return Image.objects.filter(site_scope(user=user))


def queue(*, user, filters: QueueFilters, now: datetime | None = None) -> QuerySet[Prediction]:
    """The active model's predictions whose image is open for this user, highest score first.

    Open: a score above the threshold, on a site where the user reviews, and unreviewed or
    awaiting a second read by someone else; or disputed, on a site the user leads. Cases leased
    to another reviewer are out until the lease expires, and so are images the worker could
    not decode (`Image.unreadable`).
    """
    version = active_version()
    if version is None:
        return Prediction.objects.none()
    now = now or timezone.now()
    # The score bound and the site stand on their own, so the database walks one index range
    # (model_version, [site,] score, id) backwards; the rest filters the rows it meets.
    predictions = Prediction.objects.filter(
        site_scope(user=user, roles=REVIEW_ROLES),
        model_version=version,
        score__gt=queue_threshold(),
    )
    open_to_read = Q(
        image__status__in=[ReviewStatus.UNREVIEWED, ReviewStatus.AWAITING_SECOND_READ]
    ) & ~Q(image__status=ReviewStatus.AWAITING_SECOND_READ, image__first_reader=user)
    if holds_role_anywhere(user=user, roles=LEAD_ROLES):
        open_to_read |= Q(site_scope(user=user, roles=LEAD_ROLES), image__status="disputed")
    leased_to_other = Q(image__lease_expires_at__gt=now) & ~Q(image__lease_holder=user)
    predictions = predictions.filter(open_to_read, image__unreadable="").exclude(leased_to_other)
    if filters.site:
        site_id = Site.objects.filter(slug=filters.site).values("pk")[:1]
        predictions = predictions.filter(site_id=Subquery(site_id))
    if filters.sex:
        predictions = predictions.filter(image__sex=filters.sex)
    if ages := filters.age_range_days():
        predictions = predictions.filter(image__age_days__gte=ages[0], image__age_days__lt=ages[1])
    if filters.status:
        predictions = predictions.filter(image__status=filters.status)
    return predictions.order_by("-score", "-id")


def prediction_why(prediction: Prediction, *, card: dict) -> str:
    """The sentence saying why the prediction's image is (or is not) in the queue, with what
    label-error triage weighed beside the residual (`predictions.triage`)."""
    return why_in_queue(
        recorded_days=prediction.image.age_days,
        predicted_days=prediction.age_days,
        sex=prediction.image.sex,
        card=card,
        threshold=queue_threshold(),
        score=prediction.score,
        verdict=triage_verdict(prediction=prediction),
        interval=None
        if prediction.interval_low_days is None or prediction.interval_high_days is None
        else (prediction.interval_low_days, prediction.interval_high_days),
    )


def queue_row(prediction: Prediction, *, card: dict, hidden: bool = False) -> dict:
    """One queue row; `hidden`: the model's output is left out (blind reading), though the
    row's place in the queue still comes from its score."""
    image = prediction.image
    row = {
        "image": image.pk,
        "site": image.site.slug,
        "sex": image.sex,
        "score": prediction.score,
        "recorded_age_days": image.age_days,
        "predicted_age_days": prediction.age_days,
        "residual_days": prediction.residual_days,
        "why": prediction_why(prediction, card=card),
        "status": image.status,
    }
    return blind.without_outputs(row) if hidden else row


def queue_rows(predictions: list[Prediction], *, user) -> list[dict]:
    """A page of the queue, the model's output left out where it is hidden from `user`."""
    hidden = blind.hidden_image_ids(user=user, image_ids=[p.image_id for p in predictions])
    cards = dict(
        ModelVersion.objects.filter(pk__in={p.model_version_id for p in predictions}).values_list(
            "pk", "card"
        )
    )
    return [
        queue_row(p, card=cards[p.model_version_id], hidden=p.image_id in hidden)
        for p in predictions
    ]


def queue_position(*, user, filters: QueueFilters, image: Image) -> tuple[int | None, int]:
    """("case n of N"): the image's place in this user's queue with these filters (None when
    it is not in it now) and the number of cases in it. Two counts on the queue's index."""
    cases = queue(user=user, filters=filters)
    total = cases.count()
    here = cases.filter(image=image).first()
    return (None if here is None else queue_ahead(cases, here) + 1), total


def queue_ahead(cases: QuerySet[Prediction], prediction: Prediction) -> int:
    """How many of the queue's cases come before `prediction` (order: -score, -id)."""
    score = prediction.score
    return cases.filter(Q(score__gt=score) | Q(score=score, id__gt=prediction.pk)).count()


@dataclass(frozen=True)
class ImageFilters:
    site: str | None = None
    sex: str | None = None
    status: str | None = None
    min_age_days: int | None = None
    max_age_days: int | None = None
    age_group: str | None = None  # "1-3", as the queue's; with the day bounds, both apply
    has_prediction: bool | None = None
    reviewed: bool | None = None  # any decision at all (status other than unreviewed)

    @classmethod
    def from_query(cls, query) -> "ImageFilters":
        def integer(key: str) -> int | None:
            raw = query.get(key)
            if raw in (None, ""):
                return None
            days = whole_number(str(raw))
            if days is None or days >= AGE_LIMIT_DAYS:
                raise FilterError(
                    f"{key} must be a whole number of days from 0 to {AGE_LIMIT_DAYS - 1}"
                )
            return days

        has = query.get("has_prediction")
        if has not in (None, "", "true", "false", "1", "0"):
            raise FilterError("has_prediction must be true or false")
        reviewed = query.get("reviewed")
        if reviewed not in (None, "", "true", "false", "1", "0"):
            raise FilterError("reviewed must be true or false")
        status = query.get("status") or None
        if status and status not in ReviewStatus.values:
            raise FilterError(f"unknown status {status!r}")
        sex = query.get("sex") or None
        _check_sex(sex)
        age_group = query.get("age_group") or None
        if age_group:
            age_group_days(age_group)
        return cls(
            site=query.get("site") or None,
            sex=sex,
            status=status,
            min_age_days=integer("min_age_days"),
            max_age_days=integer("max_age_days"),
            age_group=age_group,
            has_prediction=None if has in (None, "") else has in ("true", "1"),
            reviewed=None if reviewed in (None, "") else reviewed in ("true", "1"),
        )


def image_list(*, user, filters: ImageFilters) -> QuerySet[Image]:
    images = image_scope(user=user).select_related("site")
    if filters.site:
        images = images.filter(site__slug=filters.site)
    if filters.sex:
        images = images.filter(sex=filters.sex)
    if filters.status:
        images = images.filter(status=filters.status)
    if filters.min_age_days is not None:
        images = images.filter(age_days__gte=filters.min_age_days)
    if filters.max_age_days is not None:
        images = images.filter(age_days__lte=filters.max_age_days)
    if filters.age_group:
        low, high = age_group_days(filters.age_group)
        images = images.filter(age_days__gte=low, age_days__lt=high)
    if filters.reviewed is not None:
        unreviewed = Q(status=ReviewStatus.UNREVIEWED)
        images = images.exclude(unreviewed) if filters.reviewed else images.filter(unreviewed)
    if filters.has_prediction is not None:
        version = active_version()
        has = Exists(
            Prediction.objects.filter(image=OuterRef("pk"), model_version=version, error="")
        )
        images = images.filter(has if filters.has_prediction else ~has)
    return images.order_by("id")


def image_rows(images: list[Image], *, user) -> list[dict]:
    """One page of the image list, with the active model's predictions in one more query
    (left out where blind reading hides them from `user`)."""
    version = active_version()
    hidden = blind.hidden_image_ids(user=user, image_ids=[i.pk for i in images])
    predictions = {
        p.image_id: p
        for p in Prediction.objects.filter(
            model_version=version, image__in=[i.pk for i in images], error=""
        )
    }
    rows = []
    for image in images:
        prediction = predictions.get(image.pk)
        row = {
            "id": image.pk,
            "site": image.site.slug,
            "sex": image.sex,
            "recorded_age_days": image.age_days,
            "curated_age_days": image.curated_age_days,
            "status": image.status,
            "revision": image.revision,
            "predicted_age_days": prediction.age_days if prediction else None,
            "score": prediction.score if prediction else None,
            "burned_in_annotation": image.burned_in_annotation,
        }
        rows.append(blind.without_outputs(row) if image.pk in hidden else row)
    return rows


def _sees_first_read(*, user, image: Image) -> bool:
    """While a double-read image awaits its second read, the first decision is hidden from
    everyone but its author and the site's leads."""
    return (
        image.status != ReviewStatus.AWAITING_SECOND_READ
        or image.first_reader_id == user.pk
        or has_role(user=user, site_id=image.site_id, roles=LEAD_ROLES)
    )


def review_list(*, user, image: Image) -> QuerySet[Review]:
    reviews = Review.objects.filter(image=image).select_related("reviewer")
    if not _sees_first_read(user=user, image=image):
        reviews = reviews.exclude(kind=Kind.FIRST_READ)
    return reviews.order_by("-id")


def review_data(review: Review) -> dict:
    return {
        "id": review.pk,
        "image": review.image_id,
        "reviewer": review.reviewer.get_username(),
        "decision": review.decision,
        "kind": review.kind,
        "age_days": review.age_days,
        "reason": review.reason,
        "comment": review.comment,
        "based_on_revision": review.based_on_revision,
        "blind": review.blind,
        "created_at": review.created_at,
        "text": history.review_text(review),
    }


def image_audit(*, user, image: Image) -> QuerySet[AuditEvent]:
    """The image's events, newest first. A second reader sees none of the first reader's
    events (decision, views, downloads, leases): who read first, when and how long they
    looked would hint at the decision the blind read hides."""
    events = AuditEvent.objects.filter(image_id=image.pk).select_related("site")
    if not _sees_first_read(user=user, image=image):
        events = events.exclude(after__kind=Kind.FIRST_READ)
        if image.first_reader_id is not None:
            events = events.exclude(actor_id=image.first_reader_id)
    return events.order_by("-id")


# Enough prior and later films to check a clerical age error, few enough to draw side by side.
PATIENT_FILMS_SHOWN = 6


def patient_films(*, user, image: Image) -> list[dict]:
    """The same pseudonymous patient's other films of the image's site, oldest first (up to
    PATIENT_FILMS_SHOWN): recorded ages only, never a model output or another reader's
    decision. Pseudonyms are per site, so another site's films never match."""
    if not image.patient_pseudonym:
        return []
    films = (
        image_scope(user=user)
        .filter(site_id=image.site_id, patient_pseudonym=image.patient_pseudonym)
        .exclude(pk=image.pk)
        .order_by("age_days", "id")[:PATIENT_FILMS_SHOWN]
    )
    return [
        {
            "id": film.pk,
            "recorded_age_days": film.age_days,
            "view_position": film.view_position,
            "dicom_url": reverse("api-image-dicom", args=[film.pk]),
            "wado_rs_url": film.wado_rs_path,
        }
        for film in films
    ]


def _can_decide(*, user, image: Image, role: str | None) -> bool:
    try:
        decision_kind(user=user, image=image, role=role)
    except ReviewError:
        return False
    return True


def image_detail(*, user, image: Image) -> dict:
    """Everything the viewer shows beside the film, with what this user may do. On a blind
    site the model's output is absent until the user has decided (`portal.predictions.blind`)."""
    prediction = latest_prediction(image=image)
    role = role_on(user=user, site_id=image.site_id)
    expires = image.lease_expires_at
    lease_open = (
        image.lease_holder_id is not None and expires is not None and expires > timezone.now()
    )
    hidden = blind.output_hidden(user=user, image=image)
    detail = {
        **image_data(image=image, latest=prediction),
        "recorded_age_days": image.age_days,
        "transfer_syntax_uid": image.transfer_syntax_uid,
        "status": image.status,
        "outcome": image.outcome,
        "revision": image.revision,
        "curated_age_days": image.curated_age_days,
        "predicted_age_days": prediction.age_days if prediction else None,
        "residual_days": prediction.residual_days if prediction else None,
        "score": prediction.score if prediction else None,
        "why": prediction_why(prediction, card=prediction.model_version.card)
        if prediction
        else None,
        "other_films": patient_films(user=user, image=image),
        "lease": {
            "holder": image.lease_holder.get_username(),
            "expires_at": image.lease_expires_at,
            "mine": image.lease_holder_id == user.pk,
        }
        if lease_open
        else None,
        "double_reading": image.site.double_reading,
        "blind_reading": image.site.blind_reading,
        "output_hidden": hidden,
        "can_review": _can_decide(user=user, image=image, role=role),
        "can_adjudicate": role in LEAD_ROLES,
    }
    return blind.without_outputs(detail, blind.OUTPUT_KEYS) if hidden else detail


def dashboard(*, user) -> dict:
    """Counts per site for the home page: images, predictions, queue, decisions, jobs."""
    version = active_version()
    sites: dict[str, dict] = {}

    def site(slug: str) -> dict:
        return sites.setdefault(
            slug,
            {"slug": slug, "images": 0, "predictions": 0, "queue": 0, "statuses": {}},
        )

    by_status = (
        image_scope(user=user).values("site__slug", "status").annotate(n=Count("id")).order_by()
    )
    for row in by_status:
        entry = site(row["site__slug"])
        entry["images"] += row["n"]
        entry["statuses"][row["status"]] = row["n"]
    if version is not None:
        predicted = (
            Prediction.objects.filter(
                site_scope(user=user, field="image__site"), model_version=version, error=""
            )
            .values("image__site__slug")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in predicted:
            site(row["image__site__slug"])["predictions"] = row["n"]
        waiting = (
            queue(user=user, filters=QueueFilters())
            .values("image__site__slug")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in waiting:
            site(row["image__site__slug"])["queue"] = row["n"]
    led_sites = Site.objects.filter(site_scope(user=user, roles=LEAD_ROLES, field="pk"))
    led = set(led_sites.values_list("slug", flat=True))
    for entry in sites.values():
        statuses = entry["statuses"]
        entry["reviewed"] = sum(n for s, n in statuses.items() if s != ReviewStatus.UNREVIEWED)
        # (label, count, status): each count links to its list (the leads' disputes: theirs)
        entry["status_rows"] = [(s.label, statuses.get(s.value, 0), s.value) for s in ReviewStatus]
        entry["lead"] = entry["slug"] in led
    return {
        "sites": sorted(sites.values(), key=lambda e: e["slug"]),
        "active_model": version,
        "threshold": queue_threshold(),
    }
