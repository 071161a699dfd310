"""The coordinator's multi-site table (`portal.reports.federated.federated_combine`) as a
standalone HTML file: the sites and who signed them, MAE per site and age group with the pooled
row, the pooled figures per age group x sex, and the between-site heterogeneity."""

from django.template.loader import render_to_string

from inference_worker.ages import group_name
from portal.reports.render.tables import NO_VALUE, fmt, fmt_ci, fmt_n

TEMPLATE = "reports/federated.html"


def _v(value: float | None, decimals: int = 2) -> str:
    return fmt(value, decimals) or NO_VALUE


def _mae_cell(m: dict | None) -> str:
    m = m or {"n": 0, "mae_months": None}
    return f"{_v(m['mae_months'])} (N {fmt_n(m['n'])})"


def _sites_table(table: dict) -> dict:
    rows = []
    for site in table["sites"]:
        overall, vs = site["metrics"]["overall"], site["validation_set"]
        ci = fmt_ci(overall.get("mae_ci_low_months"), overall.get("mae_ci_high_months"))
        rows.append(
            [
                site["portal"],
                site["key_id"],
                f"{vs['name']} v{vs['version']}",
                vs["manifest_sha256"][:16],
                f"{site['model']['name']} ({site['model']['sha256'][:12]})",
                fmt_n(overall["n"]),
                f"{_v(overall['mae_months'])} {ci}".strip(),
                _v(overall["rmse_months"]),
                _v(overall["bias_months"]),
            ]
        )
    columns = ["portal", "key id", "set", "manifest sha256", "model (sha256)", "N"]
    return {
        "kind": "federated_sites",
        "title": "Sites: each a signed report, checked against the trusted portals",
        "columns": [*columns, "MAE (months) [95% CI]", "RMSE (months)", "bias (months)"],
        "rows": rows,
        "note": "",
    }


def _site_group_table(table: dict, groups: list[str]) -> dict:
    rows = [
        [
            site["portal"],
            *(_mae_cell(site["metrics"]["by_group"].get(g)) for g in groups),
            _mae_cell(site["metrics"]["overall"]),
        ]
        for site in table["sites"]
    ]
    pooled = table["pooled"]
    rows.append(
        [
            "pooled",
            *(_mae_cell(pooled["by_group"].get(g)) for g in groups),
            _mae_cell(pooled["overall"]),
        ]
    )
    return {
        "kind": "federated_site_group",
        "title": "MAE by site and age group",
        "columns": ["site", *(f"{g} y" for g in groups), "all ages"],
        "rows": rows,
        "note": "Each cell: MAE in months (N items). Pooled: weighted by each site's N.",
    }


def _pooled_table(table: dict) -> dict:
    pooled = table["pooled"]
    cells = [("overall", pooled["overall"])]
    for section in ("by_sex", "by_group", "by_group_sex"):
        cells += list(pooled[section].items())
    rows = [
        [
            key,
            fmt_n(m["n"]),
            str(m["sites"]),
            _v(m["mae_months"]),
            _v(m["rmse_months"]),
            _v(m["bias_months"]),
            _v(m["mape_percent"], 1),
        ]
        for key, m in cells
    ]
    return {
        "kind": "federated_pooled",
        "title": "Pooled over the sites",
        "columns": ["cell", "N", "sites", "MAE (months)", "RMSE (months)", "bias", "MAPE (%)"],
        "rows": rows,
        "note": "MAE, bias: weighted by N; RMSE: its squares weighted by N; MAPE: by MAPE N.",
    }


def _heterogeneity_table(table: dict) -> dict:
    spread = table["heterogeneity"]
    cells = [("overall", spread["overall"])]
    for section in ("by_group", "by_group_sex"):
        cells += list(spread[section].items())
    rows = []
    for key, h in cells:
        ci = fmt_ci(h["random_ci_low_months"], h["random_ci_high_months"])
        rows.append(
            [
                key,
                str(h["sites"]),
                f"{_v(h['q'])} ({h['df']})" if h["q"] is not None else NO_VALUE,
                _v(h["i2_percent"], 1),
                _v(h["tau2"], 3),
                f"{_v(h['random_mae_months'])} {ci}".strip(),
            ]
        )
    return {
        "kind": "federated_heterogeneity",
        "title": "Between-site heterogeneity of the MAE",
        "columns": ["cell", "sites", "Q (df)", "I² (%)", "τ² (months²)", "random-effects MAE"],
        "rows": rows,
        "note": (
            "Cochran's Q over the sites' MAEs weighted by 1 / SE² (SE = SD of |error| / √N), "
            "I² = (Q − df) / Q, τ²: DerSimonian-Laird; random-effects MAE with its 95% interval. "
            "Sites with N < 2 in a cell are left out of its row."
        ),
    }


def federated_tables(table: dict) -> list[dict]:
    groups = [group_name(low, high) for low, high in table["age_groups"]]
    return [
        _sites_table(table),
        _site_group_table(table, groups),
        _pooled_table(table),
        _heterogeneity_table(table),
    ]


def federated_html(table: dict) -> str:
    models = ", ".join(m["sha256"][:12] for m in table["models"])
    return render_to_string(
        TEMPLATE,
        {
            "title": f"Federated validation: {len(table['sites'])} sites, model sha256 {models}",
            "combined_at": table["combined_at"],
            "refused": table["refused"],
            "tables": federated_tables(table),
        },
    )
