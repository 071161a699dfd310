"""Federated validation: a site's signed report of a model on its frozen set, and a
coordinator's table of many sites' reports (docs/validation.md, "Federated validation").

A site shares only aggregates: per age group x sex (and overall, per group, per sex) the
`inference_worker.federated.site_cells` figures and counts, the model version's sha256, the set's
manifest checksum and this portal's identity (its public key); no image, no per-image row. The
file is JSON, `{"report": {...}, "signature": {...}}`: the signature (`portal.core.signing.sign`,
the key that signs validation set exports) is over the canonical bytes of "report" (keys sorted,
no spaces, ASCII: `canonical`), so any change to a figure breaks it. A coordinator accepts a file
only when it verifies and its key is a trusted portal's (`trusted_portal add`) or its own.
"""

import datetime as dt
import json
import math

from django.utils import timezone

from inference_worker import federated
from portal.accounts.trust import trusted_portal_for_key
from portal.core import signing
from portal.reports.models import Report
from portal.reports.services import report_points
from portal.validation.services import portal_version

FORMAT = "cxr-age-federated-report"
FORMAT_VERSION = 1
COMBINED_FORMAT = "cxr-age-federated-table"
MAX_FILE_BYTES = 16 * 1024 * 1024  # a report is a few hundred cells: anything larger is refused
OWN_PORTAL = "this portal"
_NUMBERS = ("mae_months", "rmse_months", "bias_months", "mape_percent", "abs_error_sd_months")
_COUNTS = ("n", "mape_n", "mape_excluded")


class FederatedError(Exception):
    """A federated report that cannot be made, read or combined, with the reason."""


def canonical(payload: dict) -> bytes:
    """The exact bytes a federated report's signature covers."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def federated_export(*, report: Report) -> bytes:
    """The signed file of `report`'s model on its frozen set: aggregates only. The report's
    predictions must be in (the command predicts the missing ones first)."""
    points = report_points(report=report)
    if not points.true_days:
        raise FederatedError("no item of the set has a prediction from the model")
    version, model = report.version, report.model_version
    try:
        public = signing.own_public_key()
    except signing.SigningError as exc:
        raise FederatedError(f"cannot sign the report: {exc}") from exc
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "portal": {
            "public_key": public,
            "key_id": signing.key_id(public),
            "portal_version": portal_version(),
        },
        "validation_set": {
            "name": version.validation_set.name,
            "version": version.number,
            "manifest_sha256": version.manifest_sha256,
            "items": version.item_count,
            "frozen_at": version.frozen_at.astimezone(dt.UTC).isoformat(),
        },
        "model": {"name": model.name, "sha256": model.sha256},
        "age_groups": report.age_groups,
        "bootstrap": {"resamples": report.resamples, "seed": report.seed, "confidence": 0.95},
        "missing_predictions": points.missing,
        "exported_at": timezone.now().astimezone(dt.UTC).isoformat(),
        "metrics": federated.site_cells(
            points.true_days,
            points.predicted_days,
            points.sex,
            groups=tuple(tuple(g) for g in report.age_groups),
            resamples=report.resamples,
            seed=report.seed,
        ),
    }
    signature = json.loads(signing.sign(canonical(payload)))
    return (json.dumps({"report": payload, "signature": signature}, indent=2) + "\n").encode()


def _cell_check(cell, where: str) -> None:
    if not isinstance(cell, dict):
        raise FederatedError(f"{where} is not a table cell")
    for name in _COUNTS:
        value = cell.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FederatedError(f"{where}: {name} is not a count")
    for name in _NUMBERS:
        value = cell.get(name)
        if value is not None and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise FederatedError(f"{where}: {name} is not a number")


def _payload_check(payload) -> None:
    """The parts `federated_combine` reads, so that a signed but malformed file is refused with
    a reason instead of failing the table."""
    try:
        if payload["format"] != FORMAT or payload["format_version"] != FORMAT_VERSION:
            raise FederatedError(f"not a {FORMAT} version {FORMAT_VERSION} file")
        for part, key, kind in (
            ("model", "sha256", str),
            ("model", "name", str),
            ("validation_set", "manifest_sha256", str),
            ("validation_set", "name", str),
            ("validation_set", "version", int),
        ):
            if not isinstance(payload[part][key], kind):
                raise FederatedError(f"{part}.{key} is missing")
        metrics = payload["metrics"]
        _cell_check(metrics["overall"], "overall")
        for section in federated.SECTIONS[1:]:
            if not isinstance(metrics[section], dict):
                raise FederatedError(f"{section} is not a table")
            for key, cell in metrics[section].items():
                _cell_check(cell, f"{section} {key}")
        if not isinstance(payload["age_groups"], list):
            raise FederatedError("age_groups is not a list")
    except (KeyError, TypeError) as exc:
        raise FederatedError(f"the report lacks {exc}") from exc


def federated_check(*, data: bytes) -> dict:
    """The report in `data` and who signed it ({"report", "portal", "key_id"}), if it is a
    well-formed federated report signed by a trusted portal (or this one); FederatedError
    with the reason otherwise."""
    if len(data) > MAX_FILE_BYTES:
        raise FederatedError(f"larger than {MAX_FILE_BYTES} bytes: not a federated report")
    try:
        document = json.loads(data)
        payload, signature = document["report"], document["signature"]
        signed = canonical(payload)
        signature_bytes = json.dumps(signature).encode()
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise FederatedError("not a federated report (unreadable JSON, or no signature)") from exc
    try:
        public = signing.verify(signed, signature_bytes)
    except signing.BadSignature as exc:
        raise FederatedError(
            f"signature does not verify: the report was altered after signing, or the "
            f"signature is forged ({exc})"
        ) from exc
    _payload_check(payload)
    try:
        named = signing.public_key_normalise(payload["portal"]["public_key"])
    except (signing.SigningError, KeyError, TypeError) as exc:
        raise FederatedError("the report does not name its portal's public key") from exc
    key_id = signing.key_id(public)
    if named != public:
        raise FederatedError(f"signed by key {key_id}, not by the portal the report names")
    if public == _own_key():
        name = OWN_PORTAL
    elif (trusted := trusted_portal_for_key(public_key=public)) is not None:
        name = trusted.name
    else:
        raise FederatedError(
            f"signed by a portal that is not trusted (key {public}, key id {key_id}): if you "
            "trust it, `manage.py trusted_portal add NAME KEY` first"
        )
    return {"report": payload, "portal": name, "key_id": key_id}


def _own_key() -> str | None:
    try:
        return signing.own_public_key()
    except signing.SigningError:
        return None  # no usable key here: its own reports are then refused like any other


def _site(name: str, checked: dict) -> dict:
    report = checked["report"]
    return {
        "file": name,
        "portal": checked["portal"],
        "key_id": checked["key_id"],
        "validation_set": report["validation_set"],
        "model": report["model"],
        "age_groups": report["age_groups"],
        "exported_at": report.get("exported_at"),
        "missing_predictions": report.get("missing_predictions"),
        "metrics": report["metrics"],
    }


def federated_combine(
    *,
    files: list[tuple[str, bytes]],
    allow_different_models: bool = False,
    unreadable: list[dict] | None = None,
) -> dict:
    """One multi-site table from `files` ((name, bytes) each): every file that fails
    `federated_check`, or repeats one already taken, is refused with its reason and the others
    combine; `unreadable` ({"file", "reason"} each) are files refused before reading. Reports of
    different model versions (sha256) or age groups do not pool: refused as a whole, unless
    `allow_different_models` (age groups never)."""
    sites, refused, seen = [], list(unreadable or []), {}
    for name, data in files:
        try:
            checked = federated_check(data=data)
        except FederatedError as exc:
            refused.append({"file": name, "reason": str(exc)})
            continue
        report = checked["report"]
        identity = (
            checked["key_id"],
            report["validation_set"]["manifest_sha256"],
            report["model"]["sha256"],
        )
        if identity in seen:
            refused.append(
                {"file": name, "reason": f"the same portal, set and model as {seen[identity]}"}
            )
            continue
        seen[identity] = name
        sites.append(_site(name, checked))
    if not sites:
        reasons = "; ".join(f"{r['file']}: {r['reason']}" for r in refused)
        raise FederatedError(f"no report to combine ({reasons})")
    models: dict[str, list[str]] = {}
    for site in sites:
        models.setdefault(site["model"]["sha256"], []).append(site["file"])
    if len(models) > 1 and not allow_different_models:
        listed = "; ".join(f"sha256 {sha[:12]}: {', '.join(f)}" for sha, f in models.items())
        raise FederatedError(
            f"reports of different model versions ({listed}): they do not pool; "
            "--allow-different-models combines them anyway"
        )
    groups = {json.dumps(site["age_groups"]) for site in sites}
    if len(groups) > 1:
        raise FederatedError("reports made with different age groups: their cells do not pool")
    pooled = federated.pool([site["metrics"] for site in sites])
    return {
        "format": COMBINED_FORMAT,
        "combined_at": timezone.now().astimezone(dt.UTC).isoformat(),
        "models": [{"sha256": sha, "files": names} for sha, names in models.items()],
        "age_groups": json.loads(groups.pop()),
        "sites": sites,
        "refused": refused,
        **pooled,
    }
