"""Reports on frozen sets: figures that later reviews cannot change, the `report` command in
every format, and missing predictions made first through the real inference queue."""

import csv
import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader
from rest_framework.test import APIClient

from inference_worker import metrics
from portal.predictions import services as predictions
from portal.predictions.models import Prediction
from portal.reports.models import Report
from portal.reports.render import PLOTS
from portal.reports.services import report_compute, report_create
from portal.review.services import review_submit
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.conftest import manage, wait_for
from tests.portal import factories as f
from tests.portal.predictions.test_jobs import make_checkpoint

AGES = [100, 300, 500, 800, 1200, 1600, 2200, 2900, 3600, 4400, 5200, 6000]


def predicted(i: int) -> int:
    return AGES[i] + 40 * (i % 5) + 20


def frozen_world(*, predict: bool = True, dicom: bool = False):
    north, south = f.site("north"), f.site("south")
    lead = f.user("lena", "lead", north, south)
    version = f.model_version("m1")
    other = f.model_version("m2", active=False)
    images = []
    for i, age in enumerate(AGES):
        image = f.image(north if i % 3 else south, age_days=age, sex="MF"[i % 2], dicom=dicom)
        if predict:
            f.prediction(image, version, age_days=predicted(i))
            f.prediction(image, other, age_days=age + 90 * (i % 4) + 10)
        f.confirm(image, lead)
        images.append(image)
    chosen = validation_set_create(name="ns", sites=[north, south], user=lead)
    return {
        "lead": lead,
        "images": images,
        "set": chosen,
        "frozen": validation_set_freeze(validation_set=chosen, user=lead),
        "model": version,
        "other": other,
    }


@pytest.mark.django_db
def test_a_report_agrees_with_the_metrics_module_and_later_reviews_change_nothing():
    world = frozen_world()
    report = report_create(
        version=world["frozen"], model=world["model"], compare=world["other"], build=False
    )
    first = report_compute(report=report)

    reference = metrics.compute(AGES, [predicted(i) for i in range(len(AGES))])
    assert first["overall"]["n"] == 12
    assert first["overall"]["mae_months"] == pytest.approx(reference.mae_months)
    assert first["overall"]["spearman_rho"] == pytest.approx(reference.spearman_rho)
    assert set(first["by_site"]) == {"north", "south"}
    assert first["overall"]["mae_ci_low_months"] <= first["overall"]["mae_months"]
    assert first["overall"]["mae_months"] <= first["overall"]["mae_ci_high_months"]
    assert first["paired"]["overall"]["n"] == 12
    assert (first["model"], first["model_sha256"]) == ("m1", world["model"].sha256)
    assert first["validation_set"]["manifest_sha256"] == world["frozen"].manifest_sha256

    # A later correction changes neither the frozen version nor its report.
    image = world["images"][4]
    image.refresh_from_db()
    review_submit(
        image=image,
        reviewer=world["lead"],
        decision="correct",
        age_days=9,
        reason="",
        comment="",
        expected_revision=image.revision,
    )
    world["frozen"].refresh_from_db()
    again = report_compute(report=report)
    assert {k: v for k, v in again.items() if k != "created_at"} == {
        k: v for k, v in first.items() if k != "created_at"
    }


@pytest.mark.slow  # real workers predict the set first
@pytest.mark.django_db(transaction=True)
def test_the_report_command_writes_every_format_with_the_same_overall_mae(data_dir, tmp_path):
    frozen_world()
    outputs = {}
    for fmt in ("json", "csv", "pdf", "html"):
        out = tmp_path / f"r.{fmt}"
        done = manage(
            "report",
            "--validation-set",
            "ns:1",
            "--model",
            "m1",
            "--compare-model",
            "m2",
            "--format",
            fmt,
            "--out",
            str(out),
            "--internal-site",
            "north",
            "--resamples",
            "200",
            data_dir=data_dir,
        )
        assert done.returncode == 0, done.stderr
        outputs[fmt] = out

    data = json.loads(outputs["json"].read_text())
    mae = f"{data['overall']['mae_months']:.2f}"
    assert data["paper_table"]["cohorts"]["internal"]["sites"] == ["north"]
    assert data["paired"]["overall"]["n"] == 12
    rows = list(csv.DictReader(io.StringIO(outputs["csv"].read_text())))
    overall = next(r for r in rows if r["model"] == "m1" and r["group"] == "overall")
    assert overall["mae_months"] == mae
    pdf = PdfReader(outputs["pdf"])
    assert len(pdf.pages) >= 5
    assert f"MAE {mae} months" in "".join(page.extract_text() for page in pdf.pages)
    text = "".join(page.extract_text() for page in pdf.pages)
    for title in PLOTS.values():  # every plot has a page with its title
        assert title in text, title
    assert f"MAE {mae} months" in outputs["html"].read_text()

    bad = manage(
        "report",
        "--validation-set",
        "ns:7",
        "--model",
        "m1",
        "--format",
        "json",
        "--out",
        str(tmp_path / "x.json"),
        data_dir=data_dir,
    )
    assert bad.returncode == 2
    assert "no validation set ns:7" in bad.stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_missing_predictions_are_made_first_through_the_inference_queue(
    start_worker, tmp_path: Path
):
    start_worker("default", "default", pool="threads")
    start_worker("inference", "inference", app="inference_worker")
    world = frozen_world(predict=False, dicom=True)
    make_checkpoint(tmp_path / "ckpt", name="tiny")
    tiny = predictions.model_version_register(folder=tmp_path / "ckpt", activate=True)
    client = APIClient()
    client.force_authenticate(world["lead"])

    asked = client.post("/api/reports/", {"validation_set": "ns", "model": "tiny"}, format="json")
    assert asked.status_code == 202, asked.content
    report_id = asked.json()["id"]

    def done() -> bool:
        return Report.objects.get(pk=report_id).state in ("done", "failed")

    wait_for(done, timeout_s=180, what="the report")
    body = client.get(f"/api/reports/{report_id}/").json()
    assert body["state"] == "done", body["failure_reason"]
    assert (body["predicted"], body["to_predict"]) == (12, 12)
    assert body["result"]["overall"]["n"] == 12
    assert Prediction.objects.filter(model_version=tiny, error="").count() == 12
    pdf = client.get(f"/api/reports/{report_id}/download/pdf/")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
