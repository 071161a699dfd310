"""The report's corrections equal to the model's output (`copied_corrections`): its CSV rows and
its page and PDF table."""

from collections.abc import Callable

COPY_COLUMNS = ["reader", "site", "corrections", "equal to the model", "share", "of them blind"]


def copies_csv_rows(copied: dict | None, csv_row: Callable[..., dict]) -> list[dict]:
    """The copies table's rows (reports before issue 17 have none)."""
    if not copied or not copied["by_reader"]:
        return []
    rows = [
        csv_row(
            model=copied["model"],
            section="copied_corrections",
            group=f"{r['reader']} {r['site']}",
            n=r["corrections"],
            copies=r["copies"],
            blind_copies=r["blind_copies"],
        )
        for r in copied["by_reader"]
    ]
    rows.append(
        csv_row(
            model=copied["model"],
            section="copied_corrections",
            group="overall",
            n=copied["corrections"],
            copies=copied["copies"],
            blind_copies=copied["blind_copies"],
            flagged_images=" ".join(str(i) for i in copied["flagged_images"]),
        )
    )
    for row in rows:
        row["small_n"] = ""  # counts of corrections, not a metric's sample
    return rows


def copies_table(copied: dict | None) -> dict | None:
    """Corrections equal to the model's output, per reader and site (reports before issue 17
    have none)."""
    if not copied or not copied["by_reader"]:
        return None
    rows = [
        [
            r["reader"],
            r["site"],
            str(r["corrections"]),
            ("⚑ " if r["copies"] else "") + str(r["copies"]),
            f"{100 * r['copies'] / r['corrections']:.0f}%",
            str(r["blind_copies"]),
        ]
        for r in copied["by_reader"]
    ]
    flagged = copied["flagged_images"]
    shown = ", ".join(str(i) for i in flagged[:50]) + (" …" if len(flagged) > 50 else "")
    return {
        "kind": "copies",
        "title": f"Corrections equal to the model's output ({copied['model']})",
        "columns": COPY_COLUMNS,
        "rows": rows,
        "note": f"⚑ flagged images ({len(flagged)}): {shown}" if flagged else "No copies.",
    }
