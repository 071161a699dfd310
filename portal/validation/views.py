"""Pages of validation sets: the list (a cursor page by name) with a form for leads, and one
set with its versions, freezing, comparing, exporting and asking for reports."""

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.accounts.models import LEAD_ROLES
from portal.core.numbers import whole_number
from portal.core.pagination import view_page
from portal.ingest.selectors import site_list
from portal.predictions.models import ModelVersion
from portal.reports.models import Report
from portal.validation import exports, selectors, services
from portal.validation.models import ValidationSet


def _set(request: HttpRequest, name: str) -> ValidationSet:
    try:
        return selectors.validation_set_get(user=request.user, name=name)
    except selectors.NotFound as exc:
        raise Http404(str(exc)) from exc


def _int(value: str) -> int | None:
    return whole_number(value.strip())


@login_required
def set_list(request: HttpRequest) -> HttpResponse:
    lead_sites = site_list(user=request.user, roles=LEAD_ROLES)
    if request.method == "POST":
        slugs = request.POST.getlist("sites")
        sites = list(lead_sites.filter(slug__in=slugs))
        if len(sites) != len(set(slugs)):
            raise PermissionDenied("you lead only some of those sites")
        try:
            created = services.validation_set_create(
                name=request.POST.get("name", "").strip(),
                sites=sites,
                user=request.user,
                description=request.POST.get("description", ""),
                statuses=request.POST.getlist("statuses") or None,
                sex=request.POST.get("sex") or None,
                min_age_days=_int(request.POST.get("min_age_days", "")),
                max_age_days=_int(request.POST.get("max_age_days", "")),
                uploaded_after=_date(request.POST.get("uploaded_after", "")),
                uploaded_before=_date(request.POST.get("uploaded_before", "")),
            )
        except services.ValidationSetError as exc:
            messages.error(request, str(exc))
            return redirect("validation:list")
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
        },
    )


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


@login_required
def set_detail(request: HttpRequest, name: str) -> HttpResponse:
    found = _set(request, name)
    versions = list(found.versions.order_by("-number").select_related("frozen_by"))
    exports = {v.pk: v.exports.order_by("-created_at").first() for v in versions}
    diff = None
    if request.GET.get("from") and request.GET.get("to"):
        try:
            old, new = (
                selectors.version_get(user=request.user, name=name, number=int(request.GET[k]))
                for k in ("from", "to")
            )
        except (selectors.NotFound, ValueError) as exc:
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
            "models": ModelVersion.objects.order_by("name"),
            "reports": Report.objects.filter(version__validation_set=found).select_related(
                "version", "model_version", "compare_version"
            )[:20],
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
