"""The report's coverage section in every format: the CSV rows, the page's and the PDF's
table (per age group and site, each with its interval), and nothing when uncalibrated."""

import pytest
from django.template.loader import render_to_string

from inference_worker import conformal
from portal.reports import render
from tests.portal.reports.test_render import _pdf_text, _points, _report, _rows


@pytest.fixture(scope="module")
def calibrated() -> tuple[dict, dict]:
    points = _points(400, seed=3)
    report = _report(points)
    held = _points(600, seed=4)
    record = conformal.calibrate(held["true_days"], held["predicted_days"], held["site"])
    table = conformal.coverage_table(
        points["true_days"], points["predicted_days"], points["site"], record
    )
    calibration = {
        "id": 1,
        "validation_set": "cal-set",
        "validation_set_version": 3,
        "manifest_sha256": "ee" * 32,
        "created_at": "2026-12-01T00:00:00+00:00",
        "in_sample": False,
    }
    report["coverage"] = {**table, "calibration": calibration}
    return report, {**points, "compare_predicted_days": None}


def test_csv_carries_coverage_per_group_and_site_with_its_interval(calibrated):
    report, _ = calibrated
    rows = [r for r in _rows(render.to_csv(report)) if r["section"].startswith("coverage_")]
    by_group = {r["group"]: r for r in rows if r["section"] == "coverage_by_group"}
    assert set(by_group) == set(report["coverage"]["by_group"])
    assert {r["group"] for r in rows if r["section"] == "coverage_by_site"} == {"north", "south"}
    for group, row in by_group.items():
        expected = report["coverage"]["by_group"][group]
        assert float(row["coverage"]) == pytest.approx(expected["coverage"], abs=5e-4)
        assert float(row["coverage_ci_low"]) <= float(row["coverage"])
        assert float(row["coverage"]) <= float(row["coverage_ci_high"])
        assert int(row["n"]) == expected["n"]


def test_the_page_and_pdf_show_the_coverage_table(calibrated):
    report, points = calibrated
    tables = [t for t in render.html_context(report, points)["tables"] if t["kind"] == "coverage"]
    assert len(tables) == 1
    labels = [row[0] for row in tables[0]["rows"]]
    assert labels[0] == "overall"
    assert "age group 1-3" in labels
    assert "site north" in labels
    assert "cal-set:3" in tables[0]["note"]
    html = render_to_string("reports/_body.html", render.html_context(report, points))
    assert "achieved coverage" in html
    _, text = _pdf_text(render.to_pdf(report, points))
    assert "achieved coverage" in text


def test_an_uncalibrated_report_has_no_coverage_table_or_rows(calibrated):
    report, points = calibrated
    bare = {**report, "coverage": None}
    assert all(t["kind"] != "coverage" for t in render.html_context(bare, points)["tables"])
    assert not any(r["section"].startswith("coverage_") for r in _rows(render.to_csv(bare)))
