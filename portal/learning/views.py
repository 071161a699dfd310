"""Training job pages: its section on the Jobs page, and its own page where the report against
the parent sits beside the lead's decision to activate the new version."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from portal.learning import selectors, services
from portal.learning.models import TrainingJob

SECTION_JOBS = 20


def jobs_section(request: HttpRequest) -> SafeString:
    """The Jobs page's training table (registered with `portal.core.job_sections`)."""
    jobs = selectors.training_job_list(user=request.user)[:SECTION_JOBS]
    rows = [selectors.training_job_status(job=job) for job in jobs]
    busy = any(r["state"] in (TrainingJob.State.QUEUED, TrainingJob.State.RUNNING) for r in rows)
    return render_to_string(
        "learning/jobs_section.html", {"rows": rows, "busy": busy}, request=request
    )


@login_required
def training_job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(selectors.training_job_list(user=request.user), pk=job_id)
    status = selectors.training_job_status(job=job)
    report = status["report"] or {}
    return render(
        request,
        "learning/job.html",
        {
            "job": job,
            "status": status,
            "report": report,
            "waiting": status["state"] in ("queued", "running")
            or report.get("state") in ("queued", "predicting"),
            "can_activate": job.result_version is not None
            and not job.result_version.is_active
            and report.get("state") == "done",
        },
    )


@login_required
@require_POST
def training_job_activate(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(selectors.training_job_list(user=request.user), pk=job_id)
    try:
        version = services.training_job_activate(job=job, user=request.user)
    except services.TrainingForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    except services.TrainingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{version.name} is now the active model version.")
    return redirect("learning:detail", job_id=job.pk)
