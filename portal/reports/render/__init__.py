"""A report (a JSON-friendly dict) turned into files: JSON, CSV, PNG plots, a PDF, and what an HTML
template needs. Pure functions: no models, no database. The page, the HTML file and the PDF are
one template (`reports/_body.html`); the PDF is that template printed by WeasyPrint.

A report holds `inference_worker.metrics.report` sections for its model ("overall", "by_sex",
"by_group", "by_group_sex", "by_site", "by_site_group", with the MAE's bootstrap interval),
optionally the same for a compare model ("compare"), their paired difference ("paired") and the
layout of Li et al. 2025 ("paper_table"). The plots also need the points: {"true_days",
"predicted_days", "compare_predicted_days" (or None), "sex", "site"}.

Numbers are shown the same way everywhere, the CSV included: months and differences with 2
decimals, MAPE with 1, Spearman's rho with 3, an interval as "[low, high]". The JSON keeps full
precision.
"""

from portal.reports.render.documents import html_context, to_pdf
from portal.reports.render.plots import PLOTS, plots
from portal.reports.render.tables import (
    CSV_COLUMNS,
    SMALL_MARK,
    SMALL_N,
    fmt,
    fmt_ci,
    site_group_cell,
    to_csv,
    to_json,
)

__all__ = [
    "CSV_COLUMNS",
    "PLOTS",
    "SMALL_MARK",
    "SMALL_N",
    "fmt",
    "fmt_ci",
    "html_context",
    "plots",
    "site_group_cell",
    "to_csv",
    "to_json",
    "to_pdf",
]
