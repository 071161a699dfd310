"""The leads' adjudication list: every disputed image of the sites the user leads, whatever its
score and whether or not a model has scored it, with reader 1's and reader 2's decisions side
by side. Rows carry no model output: blind reading hides it from leads too until they decide
(`portal.predictions.blind`), and the dispute is between the readers, not the model."""

from django.db.models import QuerySet
from django.utils import timezone

from portal.accounts.models import LEAD_ROLES
from portal.accounts.selectors import holds_role_anywhere, site_scope
from portal.ingest.models import Image, ReviewStatus
from portal.review.models import Kind, Review
from portal.review.selectors import review_data

# Oldest case first: a dispute waits no longer than those before it.
ORDER = ["id"]


def may_adjudicate(*, user) -> bool:
    return holds_role_anywhere(user=user, roles=LEAD_ROLES)


def dispute_list(*, user, site: str | None = None) -> QuerySet[Image]:
    """Disputed images of the sites where the user is a lead (superusers: every site)."""
    images = Image.objects.filter(
        site_scope(user=user, roles=LEAD_ROLES), status=ReviewStatus.DISPUTED
    ).select_related("site", "lease_holder")
    if site:
        images = images.filter(site__slug=site)
    return images.order_by(*ORDER)


def dispute_count(*, user) -> int:
    return dispute_list(user=user).count()


def _read(review: Review | None) -> dict | None:
    return None if review is None else review_data(review)


def dispute_rows(images: list[Image]) -> list[dict]:
    """One page of the list: each image with its latest first and second read (one query)."""
    reads: dict[tuple[int, str], Review] = {}
    reviews = (
        Review.objects.filter(
            image__in=[i.pk for i in images], kind__in=[Kind.FIRST_READ, Kind.SECOND_READ]
        )
        .select_related("reviewer")
        .order_by("id")
    )
    for review in reviews:
        reads[(review.image_id, review.kind)] = review  # the latest of each kind wins
    now = timezone.now()
    rows = []
    for image in images:
        first = reads.get((image.pk, Kind.FIRST_READ))
        second = reads.get((image.pk, Kind.SECOND_READ))
        expires = image.lease_expires_at
        leased = image.lease_holder_id is not None and expires is not None and expires > now
        rows.append(
            {
                "image": image.pk,
                "site": image.site.slug,
                "sex": image.sex,
                "recorded_age_days": image.age_days,
                "status": image.status,
                "revision": image.revision,
                "disputed_at": second.created_at if second else None,
                "lease": {"holder": image.lease_holder.get_username(), "expires_at": expires}
                if leased
                else None,
                "first_read": _read(first),
                "second_read": _read(second),
            }
        )
    return rows
