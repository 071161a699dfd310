"""Web pages of the ingest area; the page script talks to the REST API for the work."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from portal.ingest import selectors
from portal.ingest.models import Upload


@login_required
def upload_new(request: HttpRequest) -> HttpResponse:
    return render(request, "ingest/upload.html", {"sites": selectors.site_list(), "upload": None})


@login_required
def upload_detail(request: HttpRequest, upload_id: int) -> HttpResponse:
    upload = get_object_or_404(Upload.objects.select_related("site"), pk=upload_id)
    return render(request, "ingest/upload.html", {"sites": [upload.site], "upload": upload})


@login_required
def upload_list(request: HttpRequest) -> HttpResponse:
    uploads = Upload.objects.select_related("site")[:200]
    return render(request, "ingest/upload_list.html", {"uploads": uploads})
