"""Writes of the accounts area: users, roles on sites, and the audit log every area writes to."""

import secrets
import unicodedata
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, QuerySet

from portal.accounts.audit import AuditAction
from portal.accounts.models import AuditEvent, Membership, Role

UserModel = get_user_model()


class AccountsError(Exception):
    """A request about users or roles that cannot be taken, with the reason; `field` names
    the input at fault (`username`, `password`) where one is, for forms to show it there."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def audit_record(
    *,
    actor,
    action: AuditAction,
    site_id: int | None = None,
    image_id: int | None = None,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event (in the caller's transaction, so it lands with what it records).
    `action` must be an `AuditAction`: one list of names, which docs/review.md describes."""
    if action not in AuditAction.values:
        raise ValueError(f"unknown audit action {action!r}: add it to AuditAction")
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_name=actor.get_username() if authenticated else "",
        action=str(action),
        site_id=site_id,
        image_id=image_id,
        target=target[:200],
        before=before,
        after=after,
    )


def audit_record_sites(*, site_ids: Iterable[int], **event) -> list[AuditEvent]:
    """The same event once per site, for what spans sites (a validation set, its exports and
    reports): each site's leads see it in their site's log, and no one sees another's."""
    return [audit_record(site_id=site_id, **event) for site_id in sorted(set(site_ids))]


# Scripts whose letters mix in one name by custom (Japanese, Chinese, Korean writing): Unicode's
# "highly restrictive" level (UTS #39, 5.2) allows these sets together, and no other mixture.
_MIXABLE_SCRIPTS = (
    {"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"},
    {"CJK", "HANGUL"},
    {"CJK", "BOPOMOFO"},
)


def _scripts(name: str) -> set[str]:
    """The scripts of a name's letters, each letter's by the first word of its Unicode name
    (LATIN, CYRILLIC, GREEK, CJK, ...); digits, `_ . @ + -` and modifier letters have none."""
    return {
        unicodedata.name(ch, "UNKNOWN").split()[0]
        for ch in name
        if unicodedata.category(ch) in ("Lu", "Ll", "Lt", "Lo")
    }


def username_normalise(username: str) -> str:
    """A user name as the portal keeps it: NFKC (as Django's forms normalise it) without
    surrounding whitespace; refused with the reason when it breaks Django's username rules
    (letters, digits and `@ . + - _`, at most 150) or mixes scripts (Latin `a` beside
    Cyrillic `а` poses as another user in the audit log)."""
    name = unicodedata.normalize("NFKC", username or "").strip()
    if not name:
        raise AccountsError("username: required", field="username")
    for validator in UserModel._meta.get_field(UserModel.USERNAME_FIELD).validators:
        try:
            validator(name)
        except ValidationError as exc:
            raise AccountsError(f"username: {' '.join(exc.messages)}", field="username") from exc
    scripts = _scripts(name)
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _MIXABLE_SCRIPTS):
        raise AccountsError(
            f"username {name!r} mixes scripts ({', '.join(sorted(s.title() for s in scripts))}):"
            " write it in one script",
            field="username",
        )
    return name


def username_clean(username: str, *, user=None) -> str:
    """The normalised name for a new user, or for renaming `user`; refused when another user
    has it, ignoring case (as Django's user creation form does)."""
    name = username_normalise(username)
    others = UserModel.objects.filter(**{f"{UserModel.USERNAME_FIELD}__iexact": name})
    if user is not None and user.pk is not None:
        others = others.exclude(pk=user.pk)
    taken = others.first()
    if taken is not None:
        raise AccountsError(f"user {taken.get_username()!r} exists", field="username")
    return name


def password_check(password: str, *, user) -> None:
    """Django's password validators (settings.AUTH_PASSWORD_VALIDATORS) with the user, so
    that the similarity check compares with their name; every password set goes through it."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountsError(f"password: {' '.join(exc.messages)}", field="password") from exc


def user_create(
    *,
    actor,
    username: str,
    password: str | None = None,
    usable_password: bool = True,
    superuser: bool = False,
) -> tuple[object, str | None]:
    """A new user; returns the generated password when none was given (shown once). Without
    `usable_password` the user cannot log in with a password (the admin's choice)."""
    name = username_clean(username)
    generated = None
    if usable_password:
        generated = None if password else secrets.token_urlsafe(12)
        password = password or generated
        password_check(password, user=UserModel(**{UserModel.USERNAME_FIELD: name}))
    else:
        password = None  # create_user() makes it unusable
    with transaction.atomic():
        if superuser:
            user = UserModel.objects.create_superuser(name, email="", password=password)
        else:
            user = UserModel.objects.create_user(name, password=password)
        audit_record(
            actor=actor,
            action=AuditAction.USER_CREATE,
            target=name,
            after={
                "is_staff": user.is_staff,
                "is_superuser": user.is_superuser,
                "usable_password": user.has_usable_password(),
            },
        )
    return user, generated


def user_set_password(*, actor, user, password: str | None) -> None:
    """Set a checked password; None disables password login (the admin's choice)."""
    if password is None:
        user.set_unusable_password()
    else:
        password_check(password, user=user)
        user.set_password(password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        audit_record(
            actor=actor,
            action=AuditAction.USER_PASSWORD,
            target=user.get_username(),
            after={"usable_password": password is not None},
        )


# What `user_update` changes (the admin's user page); the password has its own service.
USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    "is_active",
    "is_staff",
    "is_superuser",
)
USER_RELATIONS = ("groups", "user_permissions")


def _label(obj) -> str:
    """A group by name, a permission as `app_label.codename`."""
    content_type = getattr(obj, "content_type", None)
    return f"{content_type.app_label}.{obj.codename}" if content_type else str(obj)


def user_update(*, actor, user, changes: dict) -> bool:
    """Change a user's name, details, flags, groups or permissions: one `user.change` event
    with before -> after of what differs (nothing differs: no event, False). A rename goes
    through the name rules; deactivating the last active lead of a site is refused."""
    unknown = set(changes) - set(USER_FIELDS) - set(USER_RELATIONS)
    if unknown:
        raise AccountsError(f"user_update: cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        stored = UserModel.objects.select_for_update().get(pk=user.pk)
        before, after = {}, {}
        for name in USER_FIELDS:
            if name not in changes:
                continue
            value = changes[name]
            if name == "username" and value != stored.get_username():
                value = username_clean(value, user=stored)
            if getattr(stored, name) != value:
                before[name], after[name] = getattr(stored, name), value
        relations = {}
        for name in USER_RELATIONS:
            if name not in changes:
                continue
            old, new = set(getattr(stored, name).all()), set(changes[name])
            if old != new:
                before[name] = sorted(_label(o) for o in old)
                after[name] = sorted(_label(o) for o in new)
                relations[name] = new
        if not after:
            return False
        if after.get("is_active") is False:
            _refuse_last_lead(leaving=Membership.objects.filter(user=stored))
        fields = [name for name in after if name in USER_FIELDS]
        for name in fields:
            setattr(stored, name, after[name])
        if fields:
            stored.save(update_fields=fields)
        for name, objs in relations.items():
            getattr(stored, name).set(objs)
        audit_record(
            actor=actor,
            action=AuditAction.USER_CHANGE,
            target=stored.get_username(),
            before=before,
            after=after,
        )
    return True


def user_delete(*, actor, user) -> None:
    """Delete a user on the record: each of their roles revoked first (a `role.revoke` per
    site, as the cascade would remove them silently), then `user.delete`. Refused while they
    are the last active lead of a site, or while records keep their name (their decisions):
    deactivate them instead."""
    name = user.get_username()
    with transaction.atomic():
        memberships = list(Membership.objects.filter(user=user).select_related("user", "site"))
        _refuse_last_lead(leaving=[m.pk for m in memberships])
        for membership in memberships:
            membership_revoke(actor=actor, membership=membership)
        audit_record(
            actor=actor,
            action=AuditAction.USER_DELETE,
            target=name,
            before={
                "is_active": user.is_active,
                "is_staff": user.is_staff,
                "is_superuser": user.is_superuser,
                "roles": {m.site.slug: m.role for m in memberships},
            },
        )
        try:
            user.delete()
        except ProtectedError as exc:
            kinds = sorted({str(o._meta.verbose_name_plural) for o in exc.protected_objects})
            raise AccountsError(
                f"{name} cannot be deleted: {', '.join(kinds)} keep their name;"
                " deactivate the account instead (clear Active)"
            ) from exc


def last_lead_refusals(*, leaving: Iterable[int] | QuerySet) -> list[str]:
    """Why taking away the memberships `leaving` (ids; revoked, downgraded, or their users
    deactivated or deleted) would leave a site that has an active lead without one: one
    reason per such site, none when it would not."""
    losing = Membership.objects.filter(pk__in=leaving, role=Role.LEAD, user__is_active=True)
    site_ids = set(losing.values_list("site_id", flat=True))
    if not site_ids:
        return []
    kept = Membership.objects.filter(
        site_id__in=site_ids, role=Role.LEAD, user__is_active=True
    ).exclude(pk__in=leaving)
    orphaned = site_ids - set(kept.values_list("site_id", flat=True))
    leads: dict[str, list[str]] = {}
    for slug, username in (
        losing.filter(site_id__in=orphaned)
        .order_by("site__slug", "user__username")
        .values_list("site__slug", "user__username")
    ):
        leads.setdefault(slug, []).append(username)
    return [
        f"{slug} must keep a lead: {' and '.join(names)}"
        f" {'is its last lead' if len(names) == 1 else 'are its last leads'}"
        f" (make someone else lead of {slug} first)"
        for slug, names in leads.items()
    ]


def _refuse_last_lead(*, leaving: Iterable[int] | QuerySet) -> None:
    """Refuse (AccountsError) taking away the last active lead of a site. The sites' rows are
    locked first, so that two leads revoking each other at once cannot both succeed."""
    leaving = list(
        leaving.values_list("pk", flat=True) if isinstance(leaving, QuerySet) else leaving
    )
    site_model = Membership._meta.get_field("site").related_model
    sites = Membership.objects.filter(pk__in=leaving, role=Role.LEAD).values("site_id")
    list(site_model.objects.select_for_update().filter(pk__in=sites).order_by("pk"))
    refusals = last_lead_refusals(leaving=leaving)
    if refusals:
        raise AccountsError("; ".join(refusals))


def membership_grant(*, actor, user, site, role: str) -> Membership:
    """Give `user` the `role` on `site` (replacing another role there), on the record; taking
    the lead role from the last active lead of a site is refused."""
    if role not in Role.values:
        raise AccountsError(f"unknown role {role!r} (expected one of {', '.join(Role.values)})")
    with transaction.atomic():
        membership = Membership.objects.select_for_update().filter(user=user, site=site).first()
        before = {"role": membership.role} if membership else None
        if membership is None:
            membership = Membership.objects.create(user=user, site=site, role=role)
        elif membership.role != role:
            if membership.role == Role.LEAD:
                _refuse_last_lead(leaving=[membership.pk])
            membership.role = role
            membership.save(update_fields=["role"])
        else:
            return membership
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_GRANT if before is None else AuditAction.ROLE_CHANGE,
            site_id=site.pk,
            target=user.get_username(),
            before=before,
            after={"role": role},
        )
    return membership


def membership_revoke(*, actor, membership: Membership) -> None:
    """Take a role away, on the record; the last active lead of a site (themselves included)
    cannot be revoked."""
    with transaction.atomic():
        _refuse_last_lead(leaving=[membership.pk])
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_REVOKE,
            site_id=membership.site_id,
            target=membership.user.get_username(),
            before={"role": membership.role},
            after=None,
        )
        membership.delete()


def membership_change(*, actor, membership: Membership, user, site, role: str) -> Membership:
    """An edit of a membership (the admin's): the old (site, role) revoked and the new one
    granted, two events, so that the old site's role is gone and the log says so. No change:
    nothing happens."""
    with transaction.atomic():
        stored = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        if (stored.user_id, stored.site_id, stored.role) == (user.pk, site.pk, role):
            return stored
        membership_revoke(actor=actor, membership=stored)
        return membership_grant(actor=actor, user=user, site=site, role=role)


def user_add(
    *, actor, username: str, role: str, sites: list, password: str | None = None
) -> tuple[object, str | None]:
    """Create the user if needed and grant `role` on every site; returns the user and the
    generated password of a new user created without one."""
    username = username_normalise(username)
    generated = None
    with transaction.atomic():
        user = UserModel.objects.filter(**{UserModel.USERNAME_FIELD: username}).first()
        if user is None:
            user, generated = user_create(actor=actor, username=username, password=password)
        elif password:
            user_set_password(actor=actor, user=user, password=password)
        for site in sites:
            membership_grant(actor=actor, user=user, site=site, role=role)
    return user, generated
