import csv
import io
import json

import numpy as np
import pytest
from pypdf import PdfReader

from inference_worker import metrics
from portal.reports import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _points(n: int = 300, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, int(18 * 365.25), n).astype(float)
    return {
        "true_days": true.tolist(),
        "predicted_days": (true + rng.normal(0, 150, n)).tolist(),
        "compare_predicted_days": (true + rng.normal(60, 300, n)).tolist(),
        "sex": rng.choice(["M", "F"], n).tolist(),
        "site": rng.choice(["north", "south"], n).tolist(),
    }


def _report(points: dict, *, compare: bool = False, paper: bool = False) -> dict:
    args = (points["true_days"], points["predicted_days"], points["sex"])
    boot = {"sites": points["site"], "resamples": 200, "seed": 0}
    report = {
        "validation_set": {
            "name": "north-2026",
            "version": 2,
            "manifest_sha256": "ab" * 32,
            "items": len(points["true_days"]),
        },
        "model": "demo-v1",
        "model_sha256": "cd" * 32,
        "compare_model": None,
        "compare_model_sha256": None,
        "age_groups": [list(g) for g in metrics.AGE_GROUPS],
        "bootstrap": {"resamples": 200, "seed": 0, "confidence": 0.95},
        "created_at": "2026-11-28T10:00:00+00:00",
        **metrics.report(*args, **boot),
        "compare": None,
        "paired": None,
        "paper_table": None,
    }
    if compare:
        compared = points["compare_predicted_days"]
        report["compare_model"] = "demo-v2"
        report["compare_model_sha256"] = "ef" * 32
        report["compare"] = metrics.report(points["true_days"], compared, points["sex"], **boot)
        report["paired"] = metrics.paired_difference(
            points["true_days"], points["predicted_days"], compared, points["sex"], **boot
        )
    else:
        points = {**points, "compare_predicted_days": None}
    if paper:
        report["paper_table"] = metrics.paper_table(*args, points["site"], {"north"})
    return report


@pytest.fixture(scope="module")
def points() -> dict:
    return _points()


@pytest.fixture(scope="module")
def single(points) -> dict:
    return _report(points)


@pytest.fixture(scope="module")
def compared(points) -> dict:
    return _report(points, compare=True, paper=True)


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _pdf_text(pdf: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_csv_parses_and_carries_the_overall_mae(single):
    rows = _rows(render.to_csv(single))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    overall = next(r for r in rows if r["section"] == "overall")
    assert (overall["model"], overall["group"]) == ("demo-v1", "overall")
    assert int(overall["n"]) == 300
    assert float(overall["mae_months"]) == pytest.approx(single["overall"]["mae_months"], abs=5e-3)
    assert overall["mae_months"] == f"{single['overall']['mae_months']:.2f}"
    assert float(overall["mae_ci_low_months"]) < float(overall["mae_months"])
    sections = {r["section"] for r in rows}
    assert sections == {"overall", "by_sex", "by_group", "by_group_sex", "by_site", "by_site_group"}
    assert {r["group"] for r in rows if r["section"] == "by_site"} == {"north", "south"}


def test_csv_leaves_missing_values_empty():
    points = _points(4)
    points["true_days"] = [100.0, 200.0, 800.0, 5000.0]  # nobody in 3-6 or 6-12
    rows = _rows(render.to_csv(_report(points)))
    empty = next(r for r in rows if r["section"] == "by_group" and r["group"] == "3-6")
    assert empty["n"] == "0"
    assert empty["mae_months"] == empty["mae_ci_low_months"] == empty["spearman_rho"] == ""
    one = next(r for r in rows if r["section"] == "by_group" and r["group"] == "12-18")
    assert (one["n"], one["mae_ci_low_months"], one["mae_ci_high_months"]) == ("1", "", "")


def test_json_round_trips(compared):
    text = render.to_json(compared)
    assert json.loads(text) == json.loads(json.dumps(compared))
    assert text == render.to_json(json.loads(text))  # sorted keys: stable


def test_pdf_opens_with_pypdf_and_holds_the_tables_plots_and_overall_mae(single, points):
    pages, text = _pdf_text(render.to_pdf(single, {**points, "compare_predicted_days": None}))
    assert pages >= 5  # title and tables, then four plots
    mae = next(r for r in _rows(render.to_csv(single)) if r["section"] == "overall")["mae_months"]
    assert f"MAE {mae} months" in text
    assert "north-2026 v2" in text
    assert "ab" * 32 in text
    assert "cd" * 32 in text
    assert "1-3 M" in text


def test_plots_are_small_deterministic_pngs(single, points):
    images = render.plots(single, {**points, "compare_predicted_days": None})
    assert set(images) == {"scatter", "bland_altman", "mae_by_group", "mae_by_site"}
    for png in images.values():
        assert png.startswith(PNG_MAGIC)
        assert 5_000 < len(png) < 1_000_000
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (1200, 800)  # 6 x 4 inches at 200 dpi: sharp in print
    assert render.plots(single, {**points, "compare_predicted_days": None}) == images


def test_compare_report_renders_both_models_and_the_paired_rows(compared, points):
    rows = _rows(render.to_csv(compared))
    assert {r["model"] for r in rows if r["section"] == "overall"} == {"demo-v1", "demo-v2"}
    paired = [r for r in rows if r["section"].startswith("paired_")]
    assert {r["section"] for r in paired} == {
        "paired_overall",
        "paired_by_sex",
        "paired_by_group",
        "paired_by_group_sex",
        "paired_by_site",
        "paired_by_site_group",
    }
    overall = next(r for r in paired if r["section"] == "paired_overall")
    assert overall["model"] == "demo-v1 - demo-v2"
    expected = compared["paired"]["overall"]
    assert overall["difference_months"] == f"{expected['difference_months']:.2f}"
    assert float(overall["difference_ci_low_months"]) <= float(overall["difference_months"])
    assert overall["mae_months"] == ""  # the models' own MAEs are in their rows

    pages, text = _pdf_text(render.to_pdf(compared, points))
    assert pages >= 6  # title and definitions, tables, the paper's layout, four plots
    assert "demo-v2" in text
    assert "Paired difference" in text
    assert render.plots(compared, points)["scatter"].startswith(PNG_MAGIC)


def test_paper_table_rows_carry_the_published_figures(compared, points):
    rows = [r for r in _rows(render.to_csv(compared)) if r["section"].startswith("paper_")]
    assert {r["section"] for r in rows} == {"paper_internal", "paper_external"}
    internal_m = next(
        r for r in rows if (r["section"], r["group"]) == ("paper_internal", "overall M")
    )
    assert internal_m["published_mae_months"] == "5.86"
    assert next(r for r in rows if r["group"] == "1-3 F")["published_mae_months"] == ""
    _, text = _pdf_text(render.to_pdf(compared, points))
    assert "figures are not available here" in text.replace("\n", " ")


def test_html_context_has_formatted_rows_and_data_uris(compared, points):
    context = render.html_context(compared, points)
    assert context["title"] == "north-2026 v2: demo-v1 vs demo-v2"
    assert ["Manifest sha256", "ab" * 32] in context["meta"]
    assert [line.split(":")[0] for line in context["summary"]] == [
        "demo-v1",
        "demo-v2",
        "demo-v1 - demo-v2",
    ]
    assert {t["kind"] for t in context["tables"]} == {"metrics", "site_group", "paired", "paper"}
    for table in context["tables"]:
        assert all(isinstance(cell, str) for row in table["rows"] for cell in row)
        assert all(len(row) == len(table["columns"]) for row in table["rows"])
    overall = context["tables"][0]["rows"][0]
    assert overall[:3] == ["overall", "300", f"{compared['overall']['mae_months']:.2f}"]
    assert overall[3] == render.fmt_ci(
        compared["overall"]["mae_ci_low_months"], compared["overall"]["mae_ci_high_months"]
    )
    assert [p["name"] for p in context["plots"]] == [
        "scatter",
        "bland_altman",
        "mae_by_group",
        "mae_by_site",
    ]
    assert all(p["uri"].startswith("data:image/png;base64,iVBOR") for p in context["plots"])


def test_numbers_are_formatted_consistently():
    assert render.fmt(6.123) == "6.12"
    assert render.fmt(-0.001) == "0.00"
    assert render.fmt(13.26, 1) == "13.3"
    assert render.fmt(None) == ""
    assert render.fmt_ci(5.9, 6.351) == "[5.90, 6.35]"
    assert render.fmt_ci(None, None) == ""


def test_csv_neutralises_formula_text_and_keeps_negative_numbers():
    points = _points(200, seed=3)
    points["predicted_days"] = [t - 60 for t in points["true_days"]]  # bias about -2 months
    points["site"] = [
        '=HYPERLINK("http://x")' if s == "north" else "-south" for s in points["site"]
    ]
    report = {**_report(points), "model": "@model"}
    rows = _rows(render.to_csv(report))
    overall = next(r for r in rows if r["section"] == "overall")
    assert overall["model"] == "'@model"
    assert float(overall["bias_months"]) < -1.5  # a number, as written: "-1.97", not "'-1.97"
    assert overall["bias_months"].startswith("-")
    assert {r["group"] for r in rows if r["section"] == "by_site"} == {
        '\'=HYPERLINK("http://x")',
        "'-south",
    }
