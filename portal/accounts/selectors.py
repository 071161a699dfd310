"""Who may see and do what on which site. Every query that returns site data filters with
`site_scope`, so another site's object is simply not found (404), as if it did not exist."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, Q, QuerySet

from portal.accounts.audit import LEAD_VISIBLE_GLOBAL
from portal.accounts.models import AuditEvent, Membership, Role

User = AbstractBaseUser | AnonymousUser


def _active(user: User) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def site_scope(*, user: User, roles: Iterable[str] | None = None, field: str = "site") -> Q:
    """A filter keeping rows whose `field` is one of the user's sites (where they hold one of
    `roles`, any role when None). Superusers see every site; anonymous users none."""
    if not _active(user):
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return Q(**{f"{field}__in": memberships.values("site_id")})


def role_on(*, user: User, site_id: int) -> str | None:
    """The user's role on a site; superusers act as leads everywhere."""
    if not _active(user):
        return None
    if user.is_superuser:
        return Role.LEAD
    return (
        Membership.objects.filter(user=user, site_id=site_id).values_list("role", flat=True).first()
    )


def has_role(*, user: User, site_id: int, roles: Iterable[str]) -> bool:
    return role_on(user=user, site_id=site_id) in set(roles)


def holds_role_anywhere(*, user: User, roles: Iterable[str]) -> bool:
    if not _active(user):
        return False
    return user.is_superuser or Membership.objects.filter(user=user, role__in=list(roles)).exists()


def is_lead_anywhere(*, user: User) -> bool:
    return holds_role_anywhere(user=user, roles=[Role.LEAD])


# The team page's order, as annotations a cursor can name (one role per user and site).
MEMBERSHIP_ORDER = ["site_slug", "username", "id"]


def membership_list(*, user: User) -> QuerySet[Membership]:
    """Memberships on the sites where the user is a lead (what a lead manages), by site and
    user name."""
    return (
        Membership.objects.filter(site_scope(user=user, roles=[Role.LEAD]))
        .select_related("user", "site")
        .annotate(site_slug=F("site__slug"), username=F("user__username"))
        .order_by(*MEMBERSHIP_ORDER)
    )


def audit_list(
    *,
    user: User,
    site: str | None = None,
    image_id: int | None = None,
    action: str | None = None,
    actor: str | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events of the sites the user leads, and the site-less events every lead sees
    (`LEAD_VISIBLE_GLOBAL`: the active model); superusers see every event."""
    events = AuditEvent.objects.select_related("site")
    if not user.is_superuser:
        visible = site_scope(user=user, roles=[Role.LEAD])
        if is_lead_anywhere(user=user):
            visible |= Q(site__isnull=True, action__in=list(LEAD_VISIBLE_GLOBAL))
        events = events.filter(visible)
    if site:
        events = events.filter(site__slug=site)
    if image_id is not None:
        events = events.filter(image_id=image_id)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_name=actor)
    return events


def audit_data(*, event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "at": event.at,
        "actor": event.actor_name,
        "action": event.action,
        "site": event.site.slug if event.site_id and event.site else None,
        "image": event.image_id,
        "target": event.target,
        "before": event.before,
        "after": event.after,
    }
