"""Whole numbers from query strings and forms. `str.isdigit` also passes `²` and other Unicode
digits that `int` refuses (a 500), and a number past 64 bits cannot be bound by SQLite (a 500
too): both are read here as "not a whole number"."""

# The largest integer that SQLite and PostgreSQL's bigint hold.
MAX_WHOLE = 2**63 - 1


def whole_number(text: str | None) -> int | None:
    """`text` as a whole number from 0 to `MAX_WHOLE`; None for anything else."""
    if text is None or not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_WHOLE else None
