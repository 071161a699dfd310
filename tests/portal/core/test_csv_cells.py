"""The one rule for CSV cells (OWASP CSV injection): text that a spreadsheet would run gets a
leading quote; numbers stay numbers."""

import csv
import io
from decimal import Decimal

import pytest

from portal.core.csv_cells import SafeDictWriter, SafeWriter, csv_cell, csv_text


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_text_starting_like_a_formula_gets_a_leading_quote_and_reads_back(text):
    assert csv_cell(text) == "'" + text
    assert csv_text(csv_cell(text)) == text


@pytest.mark.parametrize("value", [-1.2, -3, 0, Decimal("-0.5"), None, True])
def test_numbers_and_empty_cells_pass_unchanged(value):
    assert csv_cell(value) is value


@pytest.mark.parametrize("text", ["-1.20", "-3", "12", "-1.5e-3"])
def test_a_numeric_columns_number_text_stays_a_number(text):
    assert csv_cell(text, numeric=True) == text
    assert csv_cell(text) == ("'" + text if text.startswith("-") else text)


@pytest.mark.parametrize("text", ["-1+2", "=1", "-", "+5", "-1.2.3"])
def test_a_numeric_columns_formula_is_still_neutralised(text):
    assert csv_cell(text, numeric=True) == "'" + text


def test_plain_text_and_a_quote_already_there_are_left_alone():
    assert csv_cell("north") == "north"
    assert csv_text("'north") == "'north"  # not one of ours: left as it is


def test_writers_neutralise_every_row():
    out = io.StringIO()
    SafeWriter(out, numeric={1}, lineterminator="\n").writerows([["=a", "-1.5"], ["b", "-x"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=a", "-1.5"], ["b", "'-x"]]
    out = io.StringIO()
    writer = SafeDictWriter(out, ["name", "bias"], numeric={"bias"}, lineterminator="\n")
    writer.writeheader()
    writer.writerow({"name": "@x", "bias": "-0.25"})
    assert out.getvalue() == "name,bias\n'@x,-0.25\n"
