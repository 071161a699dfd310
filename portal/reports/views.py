"""The report page: progress while missing predictions are made, then tables and plots."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.reports import render as render_module
from portal.reports import selectors
from portal.reports.api import report_request
from portal.reports.models import Report
from portal.reports.services import ReportError, report_points


@login_required
@require_POST
def report_new(request: HttpRequest) -> HttpResponse:
    values = {
        "validation_set": request.POST.get("validation_set", ""),
        "model": request.POST.get("model", ""),
        "compare_model": request.POST.get("compare_model", ""),
        "age_groups": request.POST.get("age_groups", ""),
        "internal_sites": request.POST.getlist("internal_sites"),
    }
    name = values["validation_set"].partition(":")[0]
    back = redirect("validation:detail", name=name) if name else redirect("validation:list")
    if not values["model"]:
        # The form offers no model until one is registered: say so rather than a 404.
        messages.error(
            request,
            "Choose a model for the report. None is registered yet: an administrator "
            "registers one (manage.py model_register), or `make run` trains the demo model.",
        )
        return back
    try:
        report = report_request(user=request.user, values=values)
    except ReportError as exc:
        messages.error(request, str(exc))
        return back
    return redirect("reports:detail", report_id=report.pk)


@login_required
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = get_object_or_404(selectors.report_list(user=request.user), pk=report_id)
    context = {"report": report, "data": selectors.report_data(report)}
    if report.state == Report.State.DONE:
        points = report_points(report=report).as_dict()
        context.update(render_module.html_context(report.result, points))
    return render(request, "reports/report.html", context)
