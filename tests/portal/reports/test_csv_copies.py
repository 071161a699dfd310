"""The report's CSV holds the copied-corrections table that its page and PDF show (issue 17)."""

import csv
import io

from portal.reports import render

COPIED = {
    "model": "m1",
    "tolerance_days": 7,
    "corrections": 3,
    "copies": 2,
    "blind_corrections": 2,
    "blind_copies": 1,
    "flagged_images": [11, 42],
    "by_reader": [
        {"reader": "ravi", "site": "blind", "corrections": 1, "copies": 0,
         "blind_corrections": 1, "blind_copies": 0},
        {"reader": "rita", "site": "open", "corrections": 2, "copies": 2,
         "blind_corrections": 1, "blind_copies": 1},
    ],
}  # fmt: skip


def copies_rows(report: dict) -> list[dict]:
    rows = csv.DictReader(io.StringIO(render.to_csv(report)))
    return [r for r in rows if r["section"] == "copied_corrections"]


def test_the_csv_has_a_row_per_reader_and_site_and_the_totals_with_the_flagged_images():
    rows = copies_rows({"model": "m1", "copied_corrections": COPIED})

    picked = [
        (r["model"], r["group"], r["n"], r["copies"], r["blind_copies"], r["flagged_images"])
        for r in rows
    ]
    assert picked == [
        ("m1", "ravi blind", "1", "0", "0", ""),
        ("m1", "rita open", "2", "2", "1", ""),
        ("m1", "overall", "3", "2", "1", "11 42"),
    ]
    assert {r["small_n"] for r in rows} == {""}


def test_a_report_without_corrections_or_from_before_issue_17_has_no_such_rows():
    assert copies_rows({"model": "m1"}) == []
    assert copies_rows({"model": "m1", "copied_corrections": {**COPIED, "by_reader": []}}) == []
