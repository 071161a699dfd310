"""Writes of the accounts area: users, roles on sites, and the audit log every area writes to."""

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from portal.accounts.models import AuditEvent, Membership, Role

UserModel = get_user_model()


class AccountsError(Exception):
    """A request about users or roles that cannot be taken, with the reason."""


def audit_record(
    *,
    actor,
    action: str,
    site_id: int | None = None,
    image_id: int | None = None,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event (in the caller's transaction, so it lands with what it records)."""
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_name=actor.get_username() if authenticated else "",
        action=action,
        site_id=site_id,
        image_id=image_id,
        target=target[:200],
        before=before,
        after=after,
    )


def user_create(*, actor, username: str, password: str | None = None) -> tuple[object, str | None]:
    """A new user; returns the generated password when none was given (shown once)."""
    if UserModel.objects.filter(username=username).exists():
        raise AccountsError(f"user {username!r} exists")
    generated = None if password else secrets.token_urlsafe(12)
    with transaction.atomic():
        user = UserModel.objects.create_user(username=username, password=password or generated)
        audit_record(actor=actor, action="user.create", target=username)
    return user, generated


def user_set_password(*, actor, user, password: str) -> None:
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(actor=actor, action="user.password", target=user.get_username())


def membership_grant(*, actor, user, site, role: str) -> Membership:
    """Give `user` the `role` on `site` (replacing another role there), on the record."""
    if role not in Role.values:
        raise AccountsError(f"unknown role {role!r} (expected one of {', '.join(Role.values)})")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user=user, site=site).first()
        before = {"role": membership.role} if membership else None
        if membership is None:
            membership = Membership.objects.create(user=user, site=site, role=role)
        elif membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
        else:
            return membership
        audit_record(
            actor=actor,
            action="role.grant" if before is None else "role.change",
            site_id=site.pk,
            target=user.get_username(),
            before=before,
            after={"role": role},
        )
    return membership


def membership_revoke(*, actor, membership: Membership) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="role.revoke",
            site_id=membership.site_id,
            target=membership.user.get_username(),
            before={"role": membership.role},
            after=None,
        )
        membership.delete()


def user_add(
    *, actor, username: str, role: str, sites: list, password: str | None = None
) -> tuple[object, str | None]:
    """Create the user if needed and grant `role` on every site; returns the user and the
    generated password of a new user created without one."""
    generated = None
    with transaction.atomic():
        user = UserModel.objects.filter(username=username).first()
        if user is None:
            user, generated = user_create(actor=actor, username=username, password=password)
        elif password:
            user_set_password(actor=actor, user=user, password=password)
        for site in sites:
            membership_grant(actor=actor, user=user, site=site, role=role)
    return user, generated
