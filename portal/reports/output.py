"""A stored report as a file: HTML (standalone), CSV, JSON or PDF (with the plots)."""

from django.template.loader import render_to_string

from portal.reports import render as render_module
from portal.reports.models import Report
from portal.reports.services import report_points

FORMATS = ("html", "csv", "json", "pdf")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "pdf": "application/pdf",
}


def render(*, report: Report, fmt: str) -> bytes:
    data = report.result
    if fmt == "json":
        return render_module.to_json(data).encode()
    if fmt == "csv":
        return render_module.to_csv(data).encode()
    points = report_points(report=report).as_dict()
    if fmt == "pdf":
        return render_module.to_pdf(data, points)
    context = {"report": report, **render_module.html_context(data, points)}
    return render_to_string("reports/report_file.html", context).encode()
