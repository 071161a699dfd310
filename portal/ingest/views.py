"""Web pages of the ingest area; the page script talks to the REST API for the work."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from portal.accounts.models import UPLOAD_ROLES
from portal.core.pagination import view_page
from portal.ingest import selectors


@login_required
def upload_new(request: HttpRequest) -> HttpResponse:
    sites = selectors.site_list(user=request.user, roles=UPLOAD_ROLES)
    if not sites.exists() and selectors.site_list(user=request.user).exists():
        raise PermissionDenied("uploading needs the uploader or lead role on a site")
    return render(request, "ingest/upload.html", {"sites": sites, "upload": None})


@login_required
def upload_detail(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = get_object_or_404(selectors.upload_list(user=request.user), pk=upload_id)
    return render(request, "ingest/upload.html", {"sites": [upload.site], "upload": upload})


@login_required
def upload_list(request: HttpRequest) -> HttpResponse:
    """The user's uploads, newest first, a cursor page at a time."""
    page, next_url, previous_url = view_page(
        request, selectors.upload_list(user=request.user), keys=["-id"]
    )
    return render(
        request,
        "ingest/upload_list.html",
        {"uploads": page.items, "next_url": next_url, "previous_url": previous_url},
    )
