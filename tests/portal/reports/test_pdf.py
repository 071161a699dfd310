"""The clinical report: the PDF is the page's own template printed by WeasyPrint (no browser), and
both say the same things: units, the definition of every figure, the age groups as intervals
from `inference_worker.ages`, the small-N flag and the site x age-group table of the service's
numbers, with the report's identity on every page."""

import csv
import html
import io
import re

import numpy as np
import pytest
from pypdf import PdfReader
from rest_framework.test import APIClient

from inference_worker import metrics
from inference_worker.ages import AGE_GROUPS, group_days, group_name
from portal.reports import output, render
from portal.reports.render.plots import _scatter
from portal.reports.services import report_create, report_finish
from tests.portal.reports.test_render import _points, _report
from tests.portal.reports.test_reports import AGES, frozen_world, predicted

pytestmark = pytest.mark.django_db

GROUPS = [group_name(low, high) for low, high in AGE_GROUPS]


def _words(text: str) -> str:
    """Text with every run of white space as one space: lines break anywhere in a PDF."""
    return " ".join(text.split())


def _pdf_pages(pdf: bytes) -> list[str]:
    return [_words(page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture
def world():
    world = frozen_world()
    report = report_create(version=world["frozen"], model=world["model"], build=False)
    report.resamples = 200
    world["report"] = report_finish(report=report)
    assert world["report"].state == "done", world["report"].failure_reason
    return world


def _expected_facts(report) -> list[str]:
    """What both the PDF and the page must say, built from the report's stored figures."""
    result = report.result
    facts = [
        "MAE (months)",
        "bias (months)",
        "mean(predicted − curated): positive, the model predicts older than the curated age",
        "negative, younger",
        "MAPE N",
        "the items the MAPE is computed over: N minus excl.",
        "the items left out of the MAPE because their curated age is under one month",
        f"N < {render.SMALL_N}: too few items for a stable figure",
        "half-open interval [low, high)",
        "[0 y 0 m, 1 y 0 m)",
        "[1 y 0 m, 3 y 0 m)",
        "[365, 1095)",
        "day 365 to day 1094",
        "[12 y 0 m, 18 y 0 m)",
        "[4383, 6574)",
        "MAE by site and age group",
        f"m1: MAE {result['overall']['mae_months']:.2f} months",
        f"N 12 {render.SMALL_MARK}",  # 12 items in all: every figure is flagged
    ]
    for site in ("north", "south"):
        facts += [render.site_group_cell(result["by_site_group"][f"{site} {g}"]) for g in GROUPS]
    return facts


def test_the_pdf_defines_every_figure_and_carries_the_services_site_by_age_table(world):
    report = world["report"]
    cells = report.result["by_site_group"]
    # The service's cells are the metrics module's figures on the cell's items.
    north_36 = [i for i, age in enumerate(AGES) if i % 3 and 1095 <= age < 2191]
    assert cells["north 3-6"]["n"] == len(north_36) == 2
    assert cells["north 3-6"]["mae_months"] == pytest.approx(
        metrics.compute([AGES[i] for i in north_36], [predicted(i) for i in north_36]).mae_months
    )
    assert cells["south 3-6"]["n"] == 0
    assert render.site_group_cell(cells["south 3-6"]) == f"– (N 0 {render.SMALL_MARK})"

    pdf = output.render(report=report, fmt="pdf")
    assert pdf.startswith(b"%PDF")
    pages = _pdf_pages(pdf)
    text = " ".join(pages)
    for fact in _expected_facts(report):
        assert fact in text, fact
    for title in render.PLOTS.values():
        assert title in text, title
    # Every page's header names the report: model, sha256 prefix, set and version, creation.
    created = report.result["created_at"][:16].replace("T", " ")
    identity = f"m1 (sha256 {'0' * 12}) · ns v1 · created {created} UTC"
    for number, page in enumerate(pages, start=1):
        assert identity in page, number
        assert f"Page {number} of {len(pages)}" in page


def test_the_page_shows_what_the_pdf_says(world, client):
    report = world["report"]
    client.force_login(world["lead"])
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    page = _words(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))
    for fact in _expected_facts(report):
        assert fact in page, fact
    body = response.content.decode()
    assert body.count('<table class="report" data-kind="site_group">') == 1
    assert body.count(' class="small-n"') >= 12  # every flagged cell is marked for the eye

    # The download is that PDF, from the same template.
    api = APIClient()
    api.force_authenticate(world["lead"])
    download = api.get(f"/api/reports/{report.pk}/download/pdf/")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    text = " ".join(_pdf_pages(download.content))
    assert render.site_group_cell(report.result["by_site_group"]["north 12-18"]) in text


def test_small_n_flags_exactly_the_figures_under_the_threshold():
    assert render.site_group_cell({"n": 30, "mae_months": 4.0}) == "4.00 (N 30)"
    assert render.site_group_cell({"n": 29, "mae_months": 4.0}) == "4.00 (N 29 †)"
    points = _points(300)
    report = _report(points)
    context = render.html_context(report, {**points, "compare_predicted_days": None})
    site_group = next(t for t in context["tables"] if t["kind"] == "site_group")
    assert site_group["columns"] == ["site", *(f"{g} y" for g in GROUPS), "all ages"]
    for row in site_group["rows"]:
        site = row[0]
        for group, cell in zip([*GROUPS, "all ages"], row[1:], strict=True):
            if site == "all sites":
                m = report["by_group"][group] if group != "all ages" else report["overall"]
            elif group == "all ages":
                m = report["by_site"][site]
            else:
                m = report["by_site_group"][f"{site} {group}"]
            assert cell == render.site_group_cell(m)
            assert (render.SMALL_MARK in cell) == (m["n"] < render.SMALL_N), cell
    table = list(csv.DictReader(io.StringIO(render.to_csv(report))))
    rows = [r for r in table if r["section"] == "by_site_group"]
    assert len(rows) == 2 * len(GROUPS)
    flagged = [r["small_n"] == "yes" for r in rows]
    cells = [report["by_site_group"][r["group"]] for r in rows]
    assert flagged == [m["n"] < render.SMALL_N for m in cells]


def test_the_age_groups_are_the_age_modules_intervals():
    report = _report(_points(50))
    report["age_groups"] = [[0, 0.5], [0.5, 2], [2, 18]]
    rows = render.html_context(report, _points(50))["age_groups"]
    assert [r["name"] for r in rows] == ["0-0.5", "0.5-2", "2-18"]
    assert [r["days"] for r in rows] == [
        f"[{first}, {end})" for first, end in (group_days(0, 0.5), group_days(0.5, 2), (730, 6574))
    ]
    assert rows[0]["interval"] == "[0 y 0 m, 0 y 6 m)"  # day 182: six months reached
    assert rows[1]["first_last"] == "day 182 to day 729"


def test_a_report_stored_before_the_site_by_age_table_still_renders():
    points = _points(60)
    report = _report(points)
    del report["by_site_group"]
    context = render.html_context(report, {**points, "compare_predicted_days": None})
    assert "site_group" not in {t["kind"] for t in context["tables"]}
    text = " ".join(_pdf_pages(render.to_pdf(report, {**points, "compare_predicted_days": None})))
    assert "How to read this report" in text


def test_the_scatter_is_in_years_and_coloured_by_site_with_readable_dots():
    points = _points(300)
    report = _report(points)
    figure = _scatter(report, {**points, "compare_predicted_days": None})
    ax = figure.axes[0]
    assert ax.get_xlabel() == "Curated age (years)"
    assert ax.get_xlim()[1] == pytest.approx(
        max(points["true_days"] + points["predicted_days"]) / 365.25
    )
    dots = [line for line in ax.lines if line.get_label() != "identity"]
    assert {line.get_label().split(" ")[0] for line in dots} == {"north", "south"}
    assert all(line.get_alpha() >= 0.3 and line.get_markersize() >= 2 for line in dots)
    identity = next(line for line in ax.lines if line.get_label() == "identity")
    assert np.allclose(identity.get_xdata(), identity.get_ydata())
    legend = figure.legends[0]
    assert legend.get_title().get_text() == "Site"


def test_many_age_groups_split_the_site_by_age_table_to_fit_the_page():
    points = _points(300)
    groups = tuple((i, i + 1) for i in range(18))
    report = _report(points)
    report.update(
        metrics.report(
            points["true_days"], points["predicted_days"], points["sex"], groups, points["site"]
        )
    )
    report["age_groups"] = [list(g) for g in groups]
    context = render.html_context(report, {**points, "compare_predicted_days": None})
    tables = [t for t in context["tables"] if t["kind"] == "site_group"]
    assert [len(t["columns"]) for t in tables] == [8, 8, 8]  # site, 6 groups, all ages
    assert tables[2]["title"].endswith("(3 of 3)")
    assert tables[2]["columns"][1] == "12-13 y"
    assert tables[2]["rows"][0][1] == render.site_group_cell(report["by_site_group"]["north 12-13"])
