"""Who may decide what on an image now: one rule, used by the decision service and by the
image detail (`can_review`), so that the viewer never offers what the service refuses."""

from portal.accounts.models import LEAD_ROLES, REVIEW_ROLES
from portal.accounts.selectors import role_on
from portal.ingest.models import Image, ReviewStatus
from portal.review.models import Kind

SETTLED = (
    ReviewStatus.CONFIRMED,
    ReviewStatus.CORRECTED,
    ReviewStatus.EXCLUDED,
    ReviewStatus.ADJUDICATED,
)


class ReviewError(Exception):
    """A decision or claim that cannot be taken; `image` is the current state when known."""

    def __init__(self, detail: str, image: Image | None = None) -> None:
        super().__init__(detail)
        self.detail, self.image = detail, image


class StaleRevision(ReviewError):
    """The decision was made on a revision that is no longer current (HTTP 409)."""


class ReviewConflict(ReviewError):
    """The case is not open to this decision now: leased to another, awaiting another reader."""


class ReviewForbidden(ReviewError):
    """The user's role on the image's site does not allow this decision (HTTP 403)."""


def decision_kind(*, user, image: Image, role: str | None = None) -> str:
    """Which read a decision by `user` would be, or the reason they may not make it now.

    Single reading: any reviewer decides, the latest decision settles. Double reading: a first
    read, then a blind second read by someone else; disagreement makes the image disputed.
    Disputed images, and settled double-read images, change only by a lead's adjudication.
    """
    role = role or role_on(user=user, site_id=image.site_id)
    if role not in REVIEW_ROLES:
        raise ReviewForbidden("you do not review on this site", image)
    double_reading = image.site.double_reading
    if image.status == ReviewStatus.DISPUTED or (double_reading and image.status in SETTLED):
        if role not in LEAD_ROLES:
            raise ReviewForbidden(
                f"this image is {image.status}: a lead of the site adjudicates it", image
            )
        return Kind.ADJUDICATION
    if not double_reading:
        return Kind.SINGLE
    if image.status == ReviewStatus.AWAITING_SECOND_READ:
        if image.first_reader_id == user.pk:
            raise ReviewConflict("you read this image first: it awaits another reviewer", image)
        return Kind.SECOND_READ
    return Kind.FIRST_READ
