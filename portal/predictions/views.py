"""The jobs page: every prediction job with a live counter (the page script polls the API)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from portal.core import job_sections
from portal.predictions.models import ModelVersion


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    active = ModelVersion.objects.filter(is_active=True).first()
    # Sections of higher apps (training jobs), rendered by their own templates.
    sections = job_sections.render_all(request)
    return render(request, "predictions/jobs.html", {"active": active, "sections": sections})
