"""Reads of reports: a report is visible with its validation set (a role on each of its sites)."""

from django.db.models import QuerySet

from portal.reports.models import Report
from portal.reports.services import report_progress
from portal.validation.selectors import validation_set_list


def report_list(*, user) -> QuerySet[Report]:
    return Report.objects.filter(
        version__validation_set__in=validation_set_list(user=user)
    ).select_related("version__validation_set", "model_version", "compare_version")


def report_data(report: Report) -> dict:
    return {
        "id": report.pk,
        "state": report.state,
        "failure_reason": report.failure_reason,
        "validation_set": report.version.validation_set.name,
        "version": report.version.number,
        "model": report.model_version.name,
        "compare_model": report.compare_version.name if report.compare_version else None,
        **report_progress(report=report),
        "result": report.result,
        "downloads": {
            fmt: f"/api/reports/{report.pk}/download/{fmt}/"
            for fmt in ("html", "csv", "json", "pdf")
        }
        if report.state == Report.State.DONE
        else None,
        "created_at": report.created_at,
        "finished_at": report.finished_at,
    }
