"""Federated validation: two portals (two signing keys) export signed reports of one model on
their own frozen sets; a coordinator (a third key) that trusts both combines them into one
table, refusing a forged, altered or untrusted file by name while the others still combine."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from inference_worker import metrics
from portal.accounts.trust import trusted_portal_add
from portal.core import signing
from portal.ingest.models import Image
from portal.predictions.models import Prediction
from portal.reports.federated import canonical
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f

pytestmark = pytest.mark.django_db
# (recorded age, predicted age) per film: north errs little, south much more.
NORTH = [(200, 230), (700, 650), (1500, 1560), (2600, 2500), (3900, 3950), (5000, 5120)]
SOUTH = [(300, 500), (900, 600), (1800, 2300), (2900, 2400), (4200, 4800), (5500, 5100)]


def _frozen(slug: str, films: list[tuple[int, int]], model, lead) -> None:
    site = f.site(slug)
    lead = f.user(f"{lead}-{slug}", "lead", site)
    for i, (age, predicted) in enumerate(films):
        image = f.image(site, age_days=age, sex="MF"[i % 2])
        f.prediction(image, model, age_days=predicted)
        f.confirm(image, lead)
    chosen = validation_set_create(name=f"{slug}-set", sites=[site], user=lead)
    validation_set_freeze(validation_set=chosen, user=lead)


@pytest.fixture
def portals(settings, tmp_path):
    """Exports of north (key a) and south (key b), and the coordinator's key c in use."""
    model = f.model_version("m1")
    _frozen("north", NORTH, model, "lena")
    _frozen("south", SOUTH, model, "sam")
    files, keys = {}, {}
    for name, slug in (("a", "north"), ("b", "south")):
        settings.SIGNING_KEY_FILE = str(tmp_path / f"{name}.pem")
        keys[name] = signing.own_public_key()
        files[name] = tmp_path / f"{slug}.json"
        call_command(
            "federated_report",
            "export",
            "--validation-set",
            f"{slug}-set",
            "--model",
            "m1",
            "--out",
            str(files[name]),
            "--resamples",
            "50",
        )
    settings.SIGNING_KEY_FILE = str(tmp_path / "c.pem")
    trusted_portal_add(actor=None, name="north-portal", public_key=keys["a"])
    trusted_portal_add(actor=None, name="south-portal", public_key=keys["b"])
    return {"files": files, "keys": keys, "tmp": tmp_path, "settings": settings}


def _combine(*paths, fmt: str = "json", out=None, extra=()) -> dict | str:
    out = out or paths[0].with_name(f"table.{fmt}")
    call_command(
        "federated_report", "combine", *map(str, paths), "--format", fmt, "--out", str(out), *extra
    )
    return json.loads(out.read_text()) if fmt == "json" else out.read_text()


def _mae_and_se(films):
    error = np.abs(np.array([p - t for t, p in films], float)) / metrics.DAYS_PER_MONTH
    return error.mean(), error.std(ddof=1) / np.sqrt(len(error))


def test_two_portals_reports_combine_into_pooled_figures_and_heterogeneity(portals):
    a = json.loads(portals["files"]["a"].read_text())["report"]
    assert a["portal"]["public_key"] == portals["keys"]["a"]
    assert a["model"]["sha256"] == "0" * 64
    assert a["metrics"]["overall"]["n"] == len(NORTH)
    assert set(a["metrics"]["by_group_sex"]) >= {"0-1 M", "12-18 F"}

    table = _combine(portals["files"]["a"], portals["files"]["b"])
    assert [s["portal"] for s in table["sites"]] == ["north-portal", "south-portal"]
    assert table["refused"] == []
    pooled = table["pooled"]["overall"]
    everything = metrics.compute([t for t, _ in NORTH + SOUTH], [p for _, p in NORTH + SOUTH])
    assert pooled["n"] == 12
    assert pooled["mae_months"] == pytest.approx(everything.mae_months)
    assert pooled["rmse_months"] == pytest.approx(everything.rmse_months)
    # Cochran's Q and I^2 by hand from the two sites' MAEs and standard errors.
    (y1, se1), (y2, se2) = _mae_and_se(NORTH), _mae_and_se(SOUTH)
    w1, w2 = 1 / se1**2, 1 / se2**2
    mean = (w1 * y1 + w2 * y2) / (w1 + w2)
    q = w1 * (y1 - mean) ** 2 + w2 * (y2 - mean) ** 2
    spread = table["heterogeneity"]["overall"]
    assert spread["q"] == pytest.approx(q)
    assert spread["tau2"] > 0  # north errs far less than south: real heterogeneity
    assert spread["i2_percent"] == pytest.approx(100 * max(0, (q - 1) / q))
    c = w1 + w2 - (w1**2 + w2**2) / (w1 + w2)
    assert spread["tau2"] == pytest.approx(max(0, (q - 1) / c))

    html = _combine(portals["files"]["a"], portals["files"]["b"], fmt="html")
    assert "north-portal" in html
    assert "Between-site heterogeneity of the MAE" in html
    assert f"{pooled['mae_months']:.2f}" in html


def test_the_file_holds_aggregates_only(portals):
    text = portals["files"]["a"].read_text()
    for image in Image.objects.all():
        for value in (str(image.uuid), image.patient_pseudonym, image.sop_instance_uid):
            assert value not in text
    report = json.loads(text)["report"]
    assert set(report["metrics"]) == {"overall", "by_group", "by_sex", "by_group_sex"}
    assert "true_days" not in text


def test_forged_altered_and_untrusted_files_are_refused_by_name_and_the_rest_combine(portals):
    tmp, good, other = portals["tmp"], portals["files"]["a"], portals["files"]["b"]
    altered = json.loads(other.read_text())
    altered["report"]["metrics"]["overall"]["mae_months"] = 1.0  # a better figure, same signature
    (tmp / "altered.json").write_text(json.dumps(altered))
    # Re-signed by a key nobody trusts, still naming south's portal, then naming its own.
    portals["settings"].SIGNING_KEY_FILE = str(tmp / "mallory.pem")
    mallory = signing.own_public_key()
    forged = json.loads(other.read_text())
    forged["signature"] = json.loads(signing.sign(canonical(forged["report"])))
    (tmp / "forged.json").write_text(json.dumps(forged))
    forged["report"]["portal"]["public_key"] = mallory
    forged["signature"] = json.loads(signing.sign(canonical(forged["report"])))
    (tmp / "untrusted.json").write_text(json.dumps(forged))
    portals["settings"].SIGNING_KEY_FILE = str(tmp / "c.pem")

    names = ["altered.json", "forged.json", "untrusted.json"]
    table = _combine(good, *(tmp / n for n in names), good)
    assert [s["portal"] for s in table["sites"]] == ["north-portal"]
    reasons = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in table["refused"]}
    assert reasons["altered.json"].startswith("signature does not verify")
    assert "not by the portal the report names" in reasons["forged.json"]
    assert "not trusted" in reasons["untrusted.json"]
    assert reasons["north.json"].startswith("the same portal, set and model as")
    with pytest.raises(CommandError, match="no report to combine"):
        _combine(tmp / "altered.json", out=tmp / "none.json")


def test_reports_of_different_models_combine_only_when_asked(portals):
    tmp = portals["tmp"]
    other = f.model_version("m2", active=False)
    other.sha256 = "1" * 64
    other.save()
    for p in Prediction.objects.filter(model_version__name="m1", site__slug="south"):
        f.prediction(p.image, other, age_days=p.age_days + 10)
    portals["settings"].SIGNING_KEY_FILE = str(tmp / "b.pem")
    south_m2 = tmp / "south-m2.json"
    call_command(
        "federated_report",
        "export",
        "--validation-set",
        "south-set",
        "--model",
        "m2",
        "--out",
        str(south_m2),
        "--resamples",
        "0",
    )
    portals["settings"].SIGNING_KEY_FILE = str(tmp / "c.pem")
    with pytest.raises(CommandError, match="different model versions"):
        _combine(portals["files"]["a"], south_m2)
    table = _combine(portals["files"]["a"], south_m2, extra=["--allow-different-models"])
    assert {m["sha256"] for m in table["models"]} == {"0" * 64, "1" * 64}
