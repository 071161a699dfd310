"""Validation sets: define from filters over curated images, freeze into immutable versions,
compare versions. Export and import live in `exports.py` and `imports.py`."""

import datetime as dt
import hashlib
import importlib.metadata
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from inference_worker.ages import AGE_LIMIT_DAYS, REPORTED_SEXES
from portal.accounts.audit import AuditAction
from portal.accounts.models import LEAD_ROLES
from portal.accounts.selectors import has_role
from portal.accounts.services import audit_record_sites
from portal.ingest.models import Image, ReviewStatus, Site
from portal.predictions.models import Prediction
from portal.review.models import Review
from portal.review.selectors import FilterError, age_group_days
from portal.validation.models import ValidationItem, ValidationSet, ValidationSetVersion

# By default a set holds images whose settled decision confirms or corrects the age.
DEFAULT_STATUSES = [ReviewStatus.CONFIRMED, ReviewStatus.CORRECTED, ReviewStatus.ADJUDICATED]
ELIGIBLE_STATUSES = set(DEFAULT_STATUSES)
MANIFEST_FIELDS = ["image", "site", "sex", "curated_age_days", "sha256"]


class ValidationSetError(Exception):
    """A request about validation sets that cannot be taken, with the reason; `field` names
    the form field at fault, where one is (the page shows the reason beside it)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class ValidationSetForbidden(ValidationSetError):
    """The user does not lead every site of the set."""


def version_audit(*, user, version: ValidationSetVersion, action: AuditAction, after: dict) -> None:
    """An event about one frozen version (its export, its reports), once per site of the set."""
    audit_record_sites(
        site_ids=version.validation_set.sites.values_list("pk", flat=True),
        actor=user,
        action=action,
        target=f"{version.validation_set.name}:{version.number}",
        after=after,
    )


def require_lead(*, user, sites: Iterable[Site]) -> None:
    if user is None:  # management commands act as the operator
        return
    for site in sites:
        if not has_role(user=user, site_id=site.pk, roles=LEAD_ROLES):
            raise ValidationSetForbidden(f"you do not lead site {site.slug}")


def _definition(
    *,
    statuses: list[str] | None,
    sex: str | None,
    min_age_days: int | None,
    max_age_days: int | None,
    uploaded_after: dt.date | None,
    uploaded_before: dt.date | None,
    age_group: str | None = None,
    blind_only: bool = False,
) -> dict:
    statuses = list(statuses or DEFAULT_STATUSES)
    unknown = [s for s in statuses if s not in ELIGIBLE_STATUSES]
    if unknown:
        raise ValidationSetError(
            f"status {', '.join(unknown)} is not a settled age "
            f"(choose from {', '.join(sorted(ELIGIBLE_STATUSES))})",
            field="statuses",
        )
    if sex not in (None, "", *REPORTED_SEXES):
        raise ValidationSetError(
            f"sex {sex!r}: expected {' or '.join(REPORTED_SEXES)}", field="sex"
        )
    if age_group:
        if (min_age_days, max_age_days) != (None, None):
            raise ValidationSetError(
                "give an age group or a minimum and maximum age, not both", field="age_group"
            )
        try:  # the queue's boundaries: [low, high) in days, so the last day is high - 1
            min_age_days, end = age_group_days(age_group)
        except FilterError as exc:
            raise ValidationSetError(str(exc), field="age_group") from exc
        max_age_days = end - 1
    for key, days in (("min_age_days", min_age_days), ("max_age_days", max_age_days)):
        if days is not None and not (isinstance(days, int) and 0 <= days < AGE_LIMIT_DAYS):
            raise ValidationSetError(
                f"{key} must be a whole number from 0 to {AGE_LIMIT_DAYS - 1}", field=key
            )
    if None not in (min_age_days, max_age_days) and min_age_days > max_age_days:
        raise ValidationSetError("the minimum age is above the maximum", field="max_age_days")
    return {
        "statuses": sorted(statuses),
        "sex": sex or None,
        "min_age_days": min_age_days,
        "max_age_days": max_age_days,
        "uploaded_after": uploaded_after.isoformat() if uploaded_after else None,
        "uploaded_before": uploaded_before.isoformat() if uploaded_before else None,
        "blind_only": bool(blind_only),
    }


def validation_set_create(
    *,
    name: str,
    sites: list[Site],
    user=None,
    description: str = "",
    statuses: list[str] | None = None,
    sex: str | None = None,
    min_age_days: int | None = None,
    max_age_days: int | None = None,
    uploaded_after: dt.date | None = None,
    uploaded_before: dt.date | None = None,
    age_group: str | None = None,
    blind_only: bool = False,
) -> ValidationSet:
    if not sites:
        raise ValidationSetError("a validation set needs at least one site", field="sites")
    require_lead(user=user, sites=sites)
    if ValidationSet.objects.filter(name=name).exists():
        raise ValidationSetError(f"validation set {name!r} exists", field="name")
    definition = _definition(
        statuses=statuses,
        sex=sex,
        min_age_days=min_age_days,
        max_age_days=max_age_days,
        uploaded_after=uploaded_after,
        uploaded_before=uploaded_before,
        age_group=age_group,
        blind_only=blind_only,
    )
    with transaction.atomic():
        created = ValidationSet.objects.create(
            name=name, description=description, definition=definition, created_by=user
        )
        created.sites.set(sites)
        audit_record_sites(
            site_ids=[s.pk for s in sites],
            actor=user,
            action=AuditAction.VALIDATION_SET_CREATE,
            target=name,
            after={**definition, "sites": sorted(s.slug for s in sites)},
        )
    return created


def eligible_images(*, validation_set: ValidationSet) -> QuerySet[Image]:
    """The images the set's definition selects now, with a settled, kept age."""
    d = validation_set.definition
    statuses = set(d.get("statuses") or DEFAULT_STATUSES)
    settled = Q(status__in=statuses - {ReviewStatus.ADJUDICATED})
    if ReviewStatus.ADJUDICATED in statuses:
        # An adjudication settles as confirm, correct or exclude: never an exclusion here.
        settled |= Q(status=ReviewStatus.ADJUDICATED, outcome__in=["confirm", "correct"])
    images = Image.objects.filter(
        settled, site__in=validation_set.sites.all(), curated_age_days__isnull=False
    )
    if d.get("sex"):
        images = images.filter(sex=d["sex"])
    if d.get("min_age_days") is not None:
        images = images.filter(curated_age_days__gte=d["min_age_days"])
    if d.get("max_age_days") is not None:
        images = images.filter(curated_age_days__lte=d["max_age_days"])
    if d.get("uploaded_after"):
        images = images.filter(upload__created_at__date__gte=d["uploaded_after"])
    if d.get("uploaded_before"):
        images = images.filter(upload__created_at__date__lte=d["uploaded_before"])
    if d.get("blind_only"):
        images = images.filter(blind_decisions_only())
    return images.order_by("id")


def blind_decisions_only() -> Q:
    """Images every decision of which was made blind (`Review.blind`: the model's output was
    hidden from its reviewer). One decision made with the model in view is enough to leave an
    image out: its age, or the ages later readers saw in its history, may come from the model."""
    reviews = Review.objects.filter(image=OuterRef("pk"))
    return Exists(reviews.filter(blind=True)) & ~Exists(reviews.filter(blind=False))


def manifest_lines(items: Iterable[dict]) -> Iterable[str]:
    yield ",".join(MANIFEST_FIELDS) + "\n"
    for item in sorted(items, key=lambda i: i["image"]):
        yield ",".join(str(item[f]) for f in MANIFEST_FIELDS) + "\n"


def manifest_sha256(items: Iterable[dict]) -> str:
    """Checksum of a version's items (image, site, sex, curated age, file sha256), in image
    order: two versions with the same checksum hold the same items."""
    digest = hashlib.sha256()
    for line in manifest_lines(items):
        digest.update(line.encode())
    return digest.hexdigest()


def portal_version() -> str:
    try:
        return importlib.metadata.version("cxr-age-portal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _provenance(items: list[dict], image_ids: list[int]) -> dict:
    reviews = Review.objects.filter(image_id__in=image_ids)
    models = (
        Prediction.objects.filter(image_id__in=image_ids, error="")
        .values("model_version__name", "model_version__sha256")
        .annotate(n=Count("id"))
        .order_by("model_version__name")
    )
    counts: dict[str, int] = {}
    for item in items:
        counts[item["site"]] = counts.get(item["site"], 0) + 1
    return {
        "sites": counts,
        "reviewers": reviews.values("reviewer").distinct().count(),
        "decisions": reviews.count(),
        "model_versions": [
            {
                "name": m["model_version__name"],
                "sha256": m["model_version__sha256"],
                "predictions": m["n"],
            }
            for m in models
        ],
        "portal_version": portal_version(),
    }


def version_record(
    *,
    validation_set: ValidationSet,
    items: list[dict],
    user=None,
    provenance: dict | None = None,
    action: AuditAction = AuditAction.VALIDATION_SET_FREEZE,
    audit_after: dict | None = None,
) -> ValidationSetVersion:
    """Write a new frozen version with exactly these items (each: image, site (slug), sex,
    curated_age_days, sha256). Freezing and import both come through here, and each writes
    its `action` (with `audit_after` added to what the event records) once per site."""
    if not items:
        raise ValidationSetError(f"{validation_set.name}: no image matches its definition")
    checksum = manifest_sha256(items)
    sites = {s.slug: s for s in validation_set.sites.all()}
    with transaction.atomic():
        ValidationSet.objects.select_for_update().get(pk=validation_set.pk)
        last = validation_set.versions.order_by("-number").first()
        version = ValidationSetVersion.objects.create(
            validation_set=validation_set,
            number=(last.number + 1) if last else 1,
            definition={**validation_set.definition, "sites": sorted(sites)},
            item_count=len(items),
            manifest_sha256=checksum,
            provenance=provenance or {},
            frozen_by=user,
        )
        ValidationItem.objects.bulk_create(
            [
                ValidationItem(
                    version=version,
                    image_id=item["image"],
                    site=sites[item["site"]],
                    sex=item["sex"],
                    curated_age_days=item["curated_age_days"],
                    sha256=item["sha256"],
                )
                for item in items
            ],
            batch_size=2000,
        )
        audit_record_sites(
            site_ids=[s.pk for s in sites.values()],
            actor=user,
            action=action,
            target=f"{validation_set.name}:{version.number}",
            before={"version": last.number, "manifest_sha256": last.manifest_sha256}
            if last
            else None,
            after={
                "version": version.number,
                "items": len(items),
                "manifest_sha256": checksum,
                **(audit_after or {}),
            },
        )
    return version


def validation_set_freeze(*, validation_set: ValidationSet, user=None) -> ValidationSetVersion:
    """Snapshot what the definition selects now. Freezing again without a change returns the
    latest version instead of a copy of it."""
    require_lead(user=user, sites=validation_set.sites.all())
    with transaction.atomic():
        # Selected and compared with the latest version under the set's lock (SQLite: the write
        # lock of BEGIN IMMEDIATE), so two freezes at once (a double click) queue here and the
        # second finds the first's version unchanged instead of writing a copy of it.
        validation_set = ValidationSet.objects.select_for_update().get(pk=validation_set.pk)
        items = [
            {
                "image": image.pk,
                "site": image.site.slug,
                "sex": image.sex,
                "curated_age_days": image.curated_age_days,
                "sha256": image.sha256,
            }
            for image in eligible_images(validation_set=validation_set).select_related("site")
        ]
        last = validation_set.versions.order_by("-number").first()
        if last is not None and items and last.manifest_sha256 == manifest_sha256(items):
            return last
        provenance = _provenance(items, [i["image"] for i in items])
        provenance["uploads"] = _upload_dates(validation_set)
        return version_record(
            validation_set=validation_set, items=items, user=user, provenance=provenance
        )


def _upload_dates(validation_set: ValidationSet) -> dict:
    images = eligible_images(validation_set=validation_set)
    first = images.order_by("upload__created_at").values_list("upload__created_at", flat=True)
    dates = list(first[:1]) + list(
        images.order_by("-upload__created_at").values_list("upload__created_at", flat=True)[:1]
    )
    return {"first": dates[0].isoformat(), "last": dates[-1].isoformat()} if dates else {}


def version_diff(*, old: ValidationSetVersion, new: ValidationSetVersion) -> dict:
    """Items added, removed or re-aged from `old` to `new` (by image)."""
    before = {i.image_id: i for i in old.items.all()}
    after = {i.image_id: i for i in new.items.all()}
    return {
        "from": old.number,
        "to": new.number,
        "added": [
            {"image": i, "curated_age_days": after[i].curated_age_days}
            for i in sorted(after.keys() - before.keys())
        ],
        "removed": [
            {"image": i, "curated_age_days": before[i].curated_age_days}
            for i in sorted(before.keys() - after.keys())
        ],
        "reaged": [
            {
                "image": i,
                "from_days": before[i].curated_age_days,
                "to_days": after[i].curated_age_days,
            }
            for i in sorted(before.keys() & after.keys())
            if before[i].curated_age_days != after[i].curated_age_days
        ],
    }
