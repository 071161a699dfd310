"""Numbers from query strings and forms. `str.isdigit` also passes `²` and other Unicode
digits that `int` refuses (a 500), and a number past 64 bits cannot be bound by SQLite (a 500
too): both are read here as "not a whole number". `float` reads `inf`, `nan`, `1e309` (inf),
`٣` and ` 1 `: a decimal here is ASCII digits with an optional fraction, nothing else."""

import re

# The largest integer that SQLite and PostgreSQL's bigint hold.
MAX_WHOLE = 2**63 - 1


def whole_number(text: str | None) -> int | None:
    """`text` as a whole number from 0 to `MAX_WHOLE`; None for anything else."""
    if text is None or not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_WHOLE else None


# ASCII digits, an optional fraction; no sign, exponent, space, `inf`/`nan` or other digits.
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


def finite_number(text: str | None, *, low: float, high: float) -> float | None:
    """`text` as a plain decimal from `low` to `high` (both included); None for anything else,
    so that a filter never reaches arithmetic or SQL with a non-finite or unbounded number."""
    if text is None or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if low <= value <= high else None
