"""The report as what its template needs (tables, definitions, age-group bounds, plots as data
URIs) and as a PDF: the same template the page includes (`reports/_body.html`, inside
`reports/report_file.html`), laid out for A4 by its print CSS and rendered by WeasyPrint, so
that the page and the PDF never say different things."""

import base64

from django.template.loader import render_to_string

from portal.reports.render.agreement import (
    agreement_definitions,
    agreement_summary,
    agreement_tables,
)
from portal.reports.render.glossary import age_group_bounds, definitions
from portal.reports.render.plots import PLOTS, _points_or_empty, plots
from portal.reports.render.tables import SMALL_MARK, SMALL_N, _identity, _meta, _summary, _tables

PDF_TEMPLATE = "reports/report_file.html"

# PDF


def to_pdf(report: dict, points: dict) -> bytes:
    """The PDF of the report: the standalone HTML file's template with `pdf` set (its @page
    rules give A4 pages, the header with the report's identity and page numbers)."""
    # Imported here: WeasyPrint loads Pango when imported, and only the PDF needs it.
    from PIL import ImageFile
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # WeasyPrint's import tells Pillow, for the whole process, to fill truncated images with
    # black; ingest checks films with Pillow in this process too, and must see the error.
    ImageFile.LOAD_TRUNCATED_IMAGES = False

    html = render_to_string(PDF_TEMPLATE, {**html_context(report, points), "pdf": True})
    # Everything the report shows is embedded (data: URIs): any other URL, a file or the
    # network, is refused rather than read.
    fetcher = URLFetcher(allowed_protocols=["data"])
    return HTML(string=html, url_fetcher=fetcher).write_pdf()


# HTML


def html_context(report: dict, points: dict) -> dict:
    """What the report's template needs: the title, the identity line (model, sha256 prefix, set,
    creation time), the title block as [label, value] pairs, summary lines (per model, and the
    paired difference), the definitions as [term, text] pairs, the age groups as intervals
    (`glossary.age_group_bounds`), the small-N rule, every table as {"kind", "title",
    "columns", "rows", "note"} of formatted strings (see `_tables`), and every plot as
    {"name", "title", "uri"} with a data:image/png;base64 URI."""
    vs = report["validation_set"]
    return {
        "title": f"{vs['name']} v{vs['version']}: {report['model']}"
        + (f" vs {report['compare_model']}" if report.get("compare_model") else ""),
        "identity": _identity(report),
        "meta": [list(pair) for pair in _meta(report)],
        "summary": _summary(report) + agreement_summary(report),
        "definitions": [list(pair) for pair in definitions(report) + agreement_definitions(report)],
        "age_groups": age_group_bounds(report),
        "small_n": SMALL_N,
        "small_mark": SMALL_MARK,
        "tables": _tables(report) + agreement_tables(report),
        "plots": [
            {
                "name": name,
                "title": PLOTS[name],
                "uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            }
            for name, png in plots(report, _points_or_empty(points)).items()
        ],
    }
