"""The report as a PDF (tables as text pages, then the plots) and as what the page's template
needs (tables and plots as data URIs)."""

import base64
import io
import textwrap

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from portal.reports.render.plots import DPI, PLOTS, _figures, _points_or_empty, plots
from portal.reports.render.tables import _meta, _summary, _tables, _text_table

PAGE = (8.27, 11.69)  # A4 portrait, inches
LINES_PER_PAGE = 62
LINE_WIDTH = 100  # characters of 7.5 pt monospace across the page
# Type 42 (TrueType) fonts so that the PDF's text can be extracted and searched.
_PDF_RC = {"pdf.fonttype": 42}

# PDF


def _text_page(title: str, lines: list[str], header: list[str] | None = None) -> Figure:
    fig = Figure(figsize=PAGE, dpi=DPI)
    fig.text(0.06, 0.955, title, fontsize=14, weight="bold", va="top")
    y = 0.92
    step = 0.86 / LINES_PER_PAGE
    for line in _wrap([*(header or []), *lines]):
        fig.text(0.06, y, line, family="DejaVu Sans Mono", fontsize=7.5, va="top")
        y -= step
    return fig


def _table_lines(table: dict) -> list[str]:
    lines = [table["title"], *_text_table(table["columns"], table["rows"])]
    if table["note"]:
        lines.append(table["note"])
    return [*lines, ""]


def _wrap(lines: list[str]) -> list[str]:
    return [part for line in lines for part in (textwrap.wrap(line, LINE_WIDTH) or [""])]


def _pages(title: str, lines: list[str]) -> list[Figure]:
    lines = _wrap(lines)
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)]
    return [
        _text_page(title if i == 0 else f"{title} (continued)", chunk)
        for i, chunk in enumerate(chunks or [[]])
    ]


def to_pdf(report: dict, points: dict) -> bytes:
    """Page 1: the title block, the overall summary and the overall / by-sex / by-age-group table;
    then the other tables; one page per plot; the paper's layout last, when present."""
    tables = _tables(report)
    first, rest = tables[0], [t for t in tables[1:] if t["kind"] != "paper"]
    paper = [t for t in tables if t["kind"] == "paper"]
    vs = report["validation_set"]
    width = max(len(label) for label, _ in _meta(report))
    header = [f"{label + ':':<{width + 1}} {value}" for label, value in _meta(report)]
    header += ["", *_summary(report), ""]
    pages = [
        _text_page(
            f"Age prediction report: {vs['name']} v{vs['version']}", _table_lines(first), header
        )
    ]
    if rest:
        pages += _pages("Tables", [line for t in rest for line in _table_lines(t)])
    pages += list(_figures(report, _points_or_empty(points)).values())
    if paper:
        pages += _pages(
            "Li et al. 2025 layout",
            [report["paper_table"]["source"], ""]
            + [line for t in paper for line in _table_lines(t)],
        )
    out = io.BytesIO()
    metadata = {"Title": f"{vs['name']} v{vs['version']}: {report['model']}", "CreationDate": None}
    with matplotlib.rc_context(_PDF_RC), PdfPages(out, metadata=metadata) as pdf:
        for fig in pages:
            pdf.savefig(fig, dpi=DPI)
    return out.getvalue()


# HTML


def html_context(report: dict, points: dict) -> dict:
    """What the report's template needs: the title block as [label, value] pairs, summary lines
    (per model, and the paired difference), every table as {"kind", "title", "columns", "rows",
    "note"} of formatted strings (see `_tables`), and every plot as {"name", "title", "uri"} with
    a data:image/png;base64 URI."""
    vs = report["validation_set"]
    return {
        "title": f"{vs['name']} v{vs['version']}: {report['model']}"
        + (f" vs {report['compare_model']}" if report.get("compare_model") else ""),
        "meta": [list(pair) for pair in _meta(report)],
        "summary": _summary(report),
        "tables": _tables(report),
        "plots": [
            {
                "name": name,
                "title": PLOTS[name],
                "uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            }
            for name, png in plots(report, _points_or_empty(points)).items()
        ],
    }
