"""Pages of validation sets: the list (a cursor page by name) with a form for leads, one set
with its versions, freezing, comparing, exporting and asking for reports, and importing another
portal's signed export."""

import datetime as dt
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from inference_worker.ages import AGE_GROUPS, AGE_LIMIT_DAYS, group_name
from portal.accounts.models import LEAD_ROLES
from portal.core.numbers import whole_number
from portal.core.pagination import view_page
from portal.ingest.selectors import site_list
from portal.validation import exports, imports, selectors, services
from portal.validation.models import ValidationSet

# What the model's SlugField accepts.
NAME = re.compile(r"[-a-zA-Z0-9_]+")
NAME_MAX = ValidationSet._meta.get_field("name").max_length


def _set(request: HttpRequest, name: str) -> ValidationSet:
    try:
        return selectors.validation_set_get(user=request.user, name=name)
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc


def _days(request: HttpRequest, key: str) -> int | None:
    """A bound in days: blank is none; anything but a whole number is refused, never read as
    no bound (the service checks the range)."""
    value = request.POST.get(key, "").strip()
    days = whole_number(value)
    if value and days is None:
        raise services.ValidationSetError(f"{key} must be a whole number of days", field=key)
    return days


def _date(request: HttpRequest, key: str) -> dt.date | None:
    """A date bound: blank is none; a date that cannot be read is refused, never dropped."""
    value = request.POST.get(key, "").strip()
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError as exc:
        raise services.ValidationSetError(
            f"{value!r} is not a date (YYYY-MM-DD)", field=key
        ) from exc


def _create(request: HttpRequest, lead_sites) -> ValidationSet:
    """The new-set form's POST: each value read (`ValidationSetError` with the field at fault),
    then the service's own checks."""
    slugs = request.POST.getlist("sites")
    sites = list(lead_sites.filter(slug__in=slugs))
    if len(sites) != len(set(slugs)):
        raise PermissionDenied("you lead only some of those sites")
    name = request.POST.get("name", "").strip()
    if not name:
        raise services.ValidationSetError("give the set a name", field="name")
    if not NAME.fullmatch(name) or len(name) > NAME_MAX:
        raise services.ValidationSetError(
            f"a name is up to {NAME_MAX} letters, digits, - and _ (no spaces)", field="name"
        )
    return services.validation_set_create(
        name=name,
        sites=sites,
        user=request.user,
        description=request.POST.get("description", ""),
        statuses=request.POST.getlist("statuses") or None,
        sex=request.POST.get("sex") or None,
        min_age_days=_days(request, "min_age_days"),
        max_age_days=_days(request, "max_age_days"),
        age_group=request.POST.get("age_group") or None,
        uploaded_after=_date(request, "uploaded_after"),
        uploaded_before=_date(request, "uploaded_before"),
        blind_only=request.POST.get("blind_only") == "on",
    )


@login_required
def set_list(request: HttpRequest) -> HttpResponse:
    """The list, and the new-set form: a refused form comes back (400) with what was typed
    and the reason beside the field at fault."""
    lead_sites = site_list(user=request.user, roles=LEAD_ROLES)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            created = _create(request, lead_sites)
        except services.ValidationSetError as exc:
            errors[exc.field or "form"] = str(exc)
        else:
            return redirect("validation:detail", name=created.name)
    page, next_url, previous_url = view_page(
        request, selectors.validation_set_list(user=request.user), keys=["name"]
    )
    return render(
        request,
        "validation/list.html",
        {
            "sets": [selectors.validation_set_data(s) for s in page.items],
            "next_url": next_url,
            "previous_url": previous_url,
            "lead_sites": lead_sites,
            "statuses": services.DEFAULT_STATUSES,
            "age_groups": [group_name(low, high) for low, high in AGE_GROUPS],
            "last_age_day": AGE_LIMIT_DAYS - 1,
            "errors": errors,
            "values": request.POST if errors else {},
            "checked_sites": request.POST.getlist("sites") if errors else [],
            "checked_statuses": request.POST.getlist("statuses") if errors else [],
        },
        status=400 if errors else 200,
    )


@login_required
def set_detail(request: HttpRequest, name: str) -> HttpResponse:
    found = _set(request, name)
    versions = list(found.versions.order_by("-number").select_related("frozen_by"))
    exports = {v.pk: v.exports.order_by("-created_at").first() for v in versions}
    diff = None
    if request.GET.get("from") and request.GET.get("to"):
        numbers = {k: whole_number(request.GET[k]) for k in ("from", "to")}
        if None in numbers.values():
            raise BadRequest("from and to must be version numbers (whole numbers)")
        try:
            old, new = (
                selectors.version_get(user=request.user, name=name, number=numbers[k])
                for k in ("from", "to")
            )
        except selectors.NotFound as exc:
            raise Http404(str(exc)) from exc
        diff = services.version_diff(old=old, new=new)
    busy = any(e and e.state in ("queued", "running") for e in exports.values())
    return render(
        request,
        "validation/detail.html",
        {
            "set": found,
            "data": selectors.validation_set_data(found),
            "versions": [(v, exports[v.pk]) for v in versions],
            "matching": services.eligible_images(validation_set=found).count(),
            "diff": diff,
            "refresh": busy,
        },
    )


@login_required
@require_POST
def set_freeze(request: HttpRequest, name: str) -> HttpResponse:
    found = _set(request, name)
    try:
        version = services.validation_set_freeze(validation_set=found, user=request.user)
    except services.ValidationSetForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.ValidationSetError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Frozen as version {version.number} ({version.item_count} items)."
        )
    return redirect("validation:detail", name=name)


@login_required
@require_POST
def set_export(request: HttpRequest, name: str, number: int) -> HttpResponse:
    try:
        version = selectors.version_get(user=request.user, name=name, number=number)
        services.require_lead(user=request.user, sites=version.validation_set.sites.all())
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc
    except services.ValidationSetError as exc:
        raise PermissionDenied(str(exc)) from exc
    exports.export_start(version=version, user=request.user)
    return redirect("validation:detail", name=name)


@login_required
def set_import(request: HttpRequest) -> HttpResponse:
    """Import another portal's export: signed by a trusted portal, or unsigned when the box
    is ticked; a refusal shows its reason and keeps nothing. For leads (of every site it
    lands in, checked on import) and administrators."""
    if not imports.may_import(user=request.user):
        raise PermissionDenied("only leads and administrators import validation sets")
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "choose the export's ZIP file")
            return redirect("validation:import")
        try:
            version = imports.import_upload(
                upload=upload,
                site_prefix=request.POST.get("site_prefix", "").strip(),
                name=request.POST.get("name", "").strip() or None,
                user=request.user,
                allow_unsigned=request.POST.get("allow_unsigned") == "on",
            )
        except services.ValidationSetForbidden as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.ValidationSetError as exc:
            messages.error(request, f"Import refused: {exc}")
            return redirect("validation:import")
        messages.success(
            request,
            f"Imported as {version.validation_set.name} v{version.number} "
            f"({version.item_count} items, {selectors.signature_text(version)}).",
        )
        return redirect("validation:detail", name=version.validation_set.name)
    return render(request, "validation/import.html")
