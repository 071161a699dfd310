"""Cells of every CSV the portal writes (audit log, validation set manifests, reports), safe to
open in a spreadsheet.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a
formula (`=HYPERLINK(...)`): it gets a leading single quote, as OWASP's CSV injection rule says.
Numbers are not formulas: a Python number passes as it is, and so does the text of a number in a
column the writer names as numeric (a report's bias "-1.20"); anything else in such a column is
text and is neutralised like any other.
"""

import csv
import re
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def csv_cell(value: Any, *, numeric: bool = False) -> Any:
    """The cell to write for `value` (None stays None: csv writes it empty)."""
    if value is None or isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    if numeric and _NUMBER.fullmatch(text):
        return text
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(cell: str) -> str:
    """The text a neutralised cell stood for (what a reader of our own CSV wants back)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def csv_row(values: Sequence[Any], *, numeric: Collection[int] = ()) -> list[Any]:
    """A row by position; `numeric`: the positions of numeric columns."""
    return [csv_cell(v, numeric=i in numeric) for i, v in enumerate(values)]


def csv_dict_row(values: dict[str, Any], *, numeric: Collection[str] = ()) -> dict[str, Any]:
    """A row by column name; `numeric`: the names of numeric columns."""
    return {k: csv_cell(v, numeric=k in numeric) for k, v in values.items()}


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class SafeWriter:
    """`csv.writer` whose rows go through `csv_row`: every CSV writer of the portal uses this
    (or `SafeDictWriter`), so no cell reaches a file unneutralised."""

    def __init__(self, stream: _Writable, *, numeric: Collection[int] = (), **options: Any) -> None:
        self._writer = csv.writer(stream, **options)
        self._numeric = frozenset(numeric)

    def writerow(self, values: Sequence[Any]) -> Any:
        return self._writer.writerow(csv_row(values, numeric=self._numeric))

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for values in rows:
            self.writerow(values)


class SafeDictWriter:
    """`csv.DictWriter` whose rows go through `csv_dict_row`."""

    def __init__(
        self,
        stream: _Writable,
        fieldnames: Sequence[str],
        *,
        numeric: Collection[str] = (),
        **options: Any,
    ) -> None:
        self._writer = csv.DictWriter(stream, fieldnames=fieldnames, **options)
        self._numeric = frozenset(numeric)

    def writeheader(self) -> Any:
        return self._writer.writeheader()

    def writerow(self, values: dict[str, Any]) -> Any:
        return self._writer.writerow(csv_dict_row(values, numeric=self._numeric))

    def writerows(self, rows: Iterable[dict[str, Any]]) -> None:
        for values in rows:
            self.writerow(values)
