"""Pages of the review area: the home dashboard, the image browser, the queue, the viewer
and the audit log. Lists are keyset-paginated like the API; the viewer is a TypeScript app."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inference_worker.ages import AGE_GROUPS, MAX_AGE_YEARS, group_name
from portal.accounts.models import REVIEW_ROLES, Role
from portal.accounts.selectors import audit_list, holds_role_anywhere, is_lead_anywhere
from portal.core.numbers import MAX_WHOLE, whole_number
from portal.core.pagination import view_page
from portal.ingest.models import ReviewStatus
from portal.ingest.selectors import site_list
from portal.predictions import blind
from portal.predictions.selectors import job_list, job_status
from portal.review import disputes, history, selectors, services
from portal.review.rules import ReviewForbidden

# The age-group choices of the queue and the image list: the default groups, `LOW-HIGH` in years.
AGE_GROUP_CHOICES = [group_name(low, high) for low, high in AGE_GROUPS]


def _require_reviewer(request: HttpRequest) -> None:
    if not holds_role_anywhere(user=request.user, roles=REVIEW_ROLES):
        raise PermissionDenied("the review queue is for reviewers and leads")


def _filters(cls, request: HttpRequest):
    try:
        return cls.from_query(request.GET)
    except selectors.FilterError as exc:
        raise BadRequest(str(exc)) from exc


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    running = job_list(user=request.user).filter(state__in=["queued", "running"])[:20]
    return render(
        request,
        "review/dashboard.html",
        {
            **selectors.dashboard(user=request.user),
            "jobs": [job_status(job=job) for job in running],
        },
    )


@login_required
def image_list(request: HttpRequest) -> HttpResponse:
    filters = _filters(selectors.ImageFilters, request)
    images = selectors.image_list(user=request.user, filters=filters)
    page, next_url, previous_url = view_page(request, images, keys=["id"])
    return render(
        request,
        "review/image_list.html",
        {
            "rows": selectors.image_rows(page.items, user=request.user),
            "filters": filters,
            "sites": site_list(user=request.user),
            "statuses": ReviewStatus.choices,
            "age_groups": AGE_GROUP_CHOICES,
            "next_url": next_url,
            "previous_url": previous_url,
        },
    )


@login_required
def image_view(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(selectors.image_scope(user=request.user), pk=image_id)
    queue_query, position, total = "", None, None
    if request.GET.get("queue"):
        filters = _filters(selectors.QueueFilters, request)
        queue_query = urlencode({"queue": "1", **filters.as_query()})
        position, total = selectors.queue_position(user=request.user, filters=filters, image=image)
    return render(
        request,
        "review/image.html",
        {
            "image_id": image.pk,
            "queue_query": queue_query,
            "queue_position": position,
            "queue_total": total,
            "last_age_year": MAX_AGE_YEARS - 1,
        },
    )


@login_required
def queue_page(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request)
    filters = _filters(selectors.QueueFilters, request)
    predictions = selectors.queue(user=request.user, filters=filters).select_related("image__site")
    page, next_url, previous_url = view_page(request, predictions, keys=["-score", "-id"])
    sites = site_list(user=request.user, roles=[Role.REVIEWER, Role.LEAD])
    rows = selectors.queue_rows(page.items, user=request.user)
    first = selectors.queue_ahead(predictions, page.items[0]) + 1 if page.items else 0
    for n, row in enumerate(rows, start=first):
        row["n"] = n  # "case n of N"
    return render(
        request,
        "review/queue.html",
        {
            "rows": rows,
            "total": predictions.count(),
            "blind_sites": [s.slug for s in sites if blind.blinded_on(user=request.user, site=s)],
            "filters": filters,
            "query": urlencode(filters.as_query()),
            "threshold": selectors.queue_threshold(),
            "lease_minutes": round(services.lease_seconds() / 60, 1),
            "sites": sites,
            "statuses": [(s.value, s.label) for s in selectors.OPEN_STATUSES],
            "age_groups": AGE_GROUP_CHOICES,
            "disputes": disputes.dispute_count(user=request.user)
            if disputes.may_adjudicate(user=request.user)
            else None,
            "next_url": next_url,
            "previous_url": previous_url,
        },
    )


@login_required
@require_POST
def queue_next(request: HttpRequest) -> HttpResponse:
    """Take the next case and open it in the viewer, in queue mode."""
    _require_reviewer(request)
    filters = _filters(selectors.QueueFilters, request)
    claim = services.queue_next(user=request.user, filters=filters)
    if claim is None:
        messages.info(request, "The queue is empty for these filters.")
        return redirect(f"/review/?{urlencode(filters.as_query())}")
    query = urlencode({"queue": "1", **filters.as_query()})
    return redirect(f"/images/{claim.image_id}/?{query}")


@login_required
def disputes_page(request: HttpRequest) -> HttpResponse:
    """The leads' adjudication list: every disputed case of their sites, whatever its score,
    reader 1 and reader 2 side by side; a case opens in the viewer to adjudicate."""
    if not disputes.may_adjudicate(user=request.user):
        raise PermissionDenied("the adjudication list is for leads")
    site = request.GET.get("site") or None
    images = disputes.dispute_list(user=request.user, site=site)
    page, next_url, previous_url = view_page(request, images, keys=disputes.ORDER)
    rows = disputes.dispute_rows(page.items)
    for row in rows:
        for read in (row["first_read"], row["second_read"]):
            if read is not None:  # "corrected the age to 5 y 3 m", the comment apart
                read["words"] = history.decision_words(
                    decision=read["decision"], age_days=read["age_days"], reason=read["reason"]
                )
    return render(
        request,
        "review/disputes.html",
        {
            "rows": rows,
            "site": site,
            "sites": site_list(user=request.user, roles=[Role.LEAD]),
            "next_url": next_url,
            "previous_url": previous_url,
        },
    )


@login_required
@require_POST
def site_blind_reading(request: HttpRequest, slug: str) -> HttpResponse:
    """The team page's switch: blind reading on or off for a site the user leads."""
    site = get_object_or_404(site_list(user=request.user), slug=slug)
    on = request.POST.get("blind_reading") == "on"
    try:
        services.site_blind_reading_set(site=site, user=request.user, on=on)
    except ReviewForbidden as exc:
        raise PermissionDenied(exc.detail) from exc
    state = "on: the model's output is hidden until each reader decides" if on else "off"
    messages.success(request, f"Blind reading on {site.slug} is {state}.")
    return redirect("accounts:team")


@login_required
def audit_page(request: HttpRequest) -> HttpResponse:
    if not is_lead_anywhere(user=request.user):
        raise PermissionDenied("the audit log is for leads")
    image = request.GET.get("image", "")
    image_id = whole_number(image)
    if image and image_id is None:
        raise BadRequest(f"image must be a whole number from 0 to {MAX_WHOLE}")
    events = audit_list(
        user=request.user,
        site=request.GET.get("site") or None,
        image_id=image_id,
        action=request.GET.get("action") or None,
        actor=request.GET.get("actor") or None,
    )
    page, next_url, previous_url = view_page(request, events, keys=["-id"])
    for event in page.items:  # readable, never a dict's repr
        event.text = history.event_text(event)
    query = {k: request.GET.get(k, "") for k in ("site", "image", "action", "actor")}
    return render(
        request,
        "review/audit.html",
        {
            "events": page.items,
            "query": query,
            "export_query": urlencode({k: v for k, v in query.items() if v}),
            "sites": site_list(user=request.user, roles=[Role.LEAD]),
            "next_url": next_url,
            "previous_url": previous_url,
        },
    )
