"""Review decisions, leases and the queue claim.

Every decision is an immutable `Review`; the image's status, settling outcome, curated age and
revision are derived here, in the same transaction, under a row lock on the image. The revision
a decision was made on must still be current, so two reviewers can never overwrite each other.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inference_worker.ages import DAYS_PER_MONTH
from portal.accounts.audit import AuditAction
from portal.accounts.models import LEAD_ROLES
from portal.accounts.selectors import has_role
from portal.accounts.services import audit_record
from portal.ingest.models import Image, ReviewStatus, Site
from portal.ingest.services import site_change
from portal.predictions.blind import output_hidden
from portal.predictions.triage import triage_rescore_reviewed
from portal.review import selectors
from portal.review.models import Decision, Kind, Review
from portal.review.rules import ReviewConflict, ReviewForbidden, StaleRevision, decision_kind

_STATUS_OF = {
    Decision.CONFIRM: ReviewStatus.CONFIRMED,
    Decision.CORRECT: ReviewStatus.CORRECTED,
    Decision.EXCLUDE: ReviewStatus.EXCLUDED,
}


def _state(image: Image) -> dict:
    return {
        "status": image.status,
        "outcome": image.outcome,
        "curated_age_days": image.curated_age_days,
        "revision": image.revision,
    }


def _settle_two_reads(first: Review, second: Review) -> tuple[str, int | None]:
    """Agreement settles the image; a different decision, or corrected ages more than the
    tolerance apart, make it disputed."""
    if first.decision != second.decision:
        return ReviewStatus.DISPUTED, None
    if first.decision == Decision.CORRECT:
        tolerance = settings.REVIEW["DOUBLE_READ_TOLERANCE_MONTHS"] * DAYS_PER_MONTH
        if abs(first.age_days - second.age_days) > tolerance:
            return ReviewStatus.DISPUTED, None
        return ReviewStatus.CORRECTED, round((first.age_days + second.age_days) / 2)
    return _STATUS_OF[first.decision], first.age_days


def review_submit(
    *,
    image: Image,
    reviewer,
    decision: str,
    age_days: int | None,
    reason: str,
    comment: str,
    expected_revision: int,
) -> Review:
    """Record one decision made on `expected_revision` and derive the image's new state."""
    now = timezone.now()
    with transaction.atomic():
        image = Image.objects.select_for_update().select_related("site").get(pk=image.pk)
        kind = decision_kind(user=reviewer, image=image)  # the role is checked first
        if image.revision != expected_revision:
            raise StaleRevision(
                f"this image changed while you were deciding (revision {expected_revision} "
                f"-> {image.revision}, now {image.status}); look again and decide",
                image,
            )
        leased_to_other = (
            image.lease_holder_id not in (None, reviewer.pk)
            and image.lease_expires_at is not None
            and image.lease_expires_at > now
        )
        if leased_to_other and kind != Kind.ADJUDICATION:
            raise ReviewConflict(
                f"another reviewer holds this case until {image.lease_expires_at:%H:%M:%S} UTC",
                image,
            )
        given_age = {
            Decision.CONFIRM: image.age_days,
            Decision.CORRECT: age_days,
            Decision.EXCLUDE: None,
        }[decision]
        before = _state(image)
        blind = output_hidden(user=reviewer, image=image)  # before this decision counts
        review = Review.objects.create(
            image=image,
            reviewer=reviewer,
            decision=decision,
            kind=kind,
            age_days=given_age,
            reason=reason if decision == Decision.EXCLUDE else "",
            comment=comment,
            based_on_revision=image.revision,
            blind=blind,
        )
        if kind == Kind.FIRST_READ:
            image.status, image.outcome, image.curated_age_days = (
                ReviewStatus.AWAITING_SECOND_READ,
                "",
                None,
            )
            image.first_reader = reviewer
        elif kind == Kind.SECOND_READ:
            first = (
                Review.objects.filter(image=image, kind=Kind.FIRST_READ)
                .exclude(pk=review.pk)
                .latest("id")
            )
            image.status, image.curated_age_days = _settle_two_reads(first, review)
            image.outcome = "" if image.status == ReviewStatus.DISPUTED else decision
        else:
            image.status = (
                ReviewStatus.ADJUDICATED if kind == Kind.ADJUDICATION else _STATUS_OF[decision]
            )
            image.outcome, image.curated_age_days = decision, given_age
        if image.status != ReviewStatus.AWAITING_SECOND_READ:
            image.first_reader = None
        image.revision += 1
        image.lease_holder, image.lease_expires_at = None, None  # a decision ends the lease
        image.save(
            update_fields=[
                "status",
                "outcome",
                "curated_age_days",
                "revision",
                "first_reader",
                "lease_holder",
                "lease_expires_at",
            ]
        )
        if image.curated_age_days != before["curated_age_days"]:
            # The patient's other films are judged against the age this decision curated.
            triage_rescore_reviewed(image_id=image.pk)
        audit_record(
            actor=reviewer,
            action=AuditAction.REVIEW_ADJUDICATE
            if kind == Kind.ADJUDICATION
            else AuditAction(f"review.{decision}"),
            site_id=image.site_id,
            image_id=image.pk,
            before=before,
            after={
                **_state(image),
                "kind": kind,
                "decision": decision,
                "age_days": given_age,
                "reason": review.reason,
                "blind": blind,
            },
        )
    return review


@dataclass(frozen=True)
class Claim:
    image_id: int
    lease_expires_at: object


def lease_seconds() -> int:
    return settings.REVIEW["LEASE_SECONDS"]


def queue_next(*, user, filters: selectors.QueueFilters) -> Claim | None:
    """Lease the highest-scoring open case to `user`, other than the one they hold (which is
    released: "next" moves on).

    Atomic on every database: candidates are read with SKIP LOCKED on PostgreSQL (SQLite's
    IMMEDIATE transactions serialise writers anyway), and the lease is taken by a conditional
    UPDATE that only succeeds while the case is still free, so two reviewers asking at the
    same moment never get the same case.
    """
    lease = timedelta(seconds=lease_seconds())
    for _attempt in range(20):
        with transaction.atomic():
            now = timezone.now()
            candidate = (
                selectors.queue(user=user, filters=filters, now=now)
                .exclude(image__lease_holder=user, image__lease_expires_at__gt=now)
                .select_related("image")
                .select_for_update(skip_locked=True, of=("image",))
                .only("id", "image__id")
                .first()
            )
            if candidate is None:
                return None
            free = (
                Q(lease_holder__isnull=True) | Q(lease_expires_at__lte=now) | Q(lease_holder=user)
            )
            expires = now + lease
            taken = (
                Image.objects.filter(free, pk=candidate.image_id)
                .filter(status__in=selectors.OPEN_STATUSES)
                .update(lease_holder=user, lease_expires_at=expires)
            )
            if not taken:
                continue  # another reviewer won this one: try the next
            for old in Image.objects.filter(lease_holder=user).exclude(pk=candidate.image_id):
                Image.objects.filter(pk=old.pk).update(lease_holder=None, lease_expires_at=None)
                audit_record(
                    actor=user,
                    action=AuditAction.LEASE_RELEASE,
                    site_id=old.site_id,
                    image_id=old.pk,
                )
            audit_record(
                actor=user,
                action=AuditAction.LEASE_TAKE,
                site_id=Image.objects.values_list("site_id", flat=True).get(pk=candidate.image_id),
                image_id=candidate.image_id,
                after={"expires_at": expires.isoformat()},
            )
            return Claim(image_id=candidate.image_id, lease_expires_at=expires)
    return None


def site_blind_reading_set(*, site: Site, user, on: bool) -> Site:
    """Switch blind reading on a site: for its leads and administrators. Through the site
    service, so that the change is a `site.change` event (before -> after), as in the admin."""
    if not has_role(user=user, site_id=site.pk, roles=LEAD_ROLES):
        raise ReviewForbidden(f"only a lead of site {site.slug} switches its blind reading")
    return site_change(site=site, user=user, blind_reading=on)


def image_access_record(*, user, image: Image, action: AuditAction) -> None:
    """An image view, DICOM download or heatmap download, on the record."""
    audit_record(actor=user, action=action, site_id=image.site_id, image_id=image.pk)
