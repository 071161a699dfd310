"""Calibrated intervals in the portal: `manage.py calibrate` on a frozen set stores an
append-only, audited record; predictions (stored, and new ones) carry the interval in the API;
the interval outlier rule scores by it; the report gains its coverage section."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from inference_worker import conformal
from portal.accounts.models import AuditEvent
from portal.core.models import AppendOnlyError
from portal.predictions import services
from portal.predictions.models import Calibration, Prediction
from portal.predictions.selectors import calibration_current
from portal.predictions.triage import triage_rescore
from portal.reports.services import report_compute, report_create
from portal.review.services import review_submit
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.portal import factories as f
from tests.portal.predictions.test_jobs import make_checkpoint

pytestmark = pytest.mark.django_db
N = 40  # above the 19 a 90% interval needs


def predicted(i: int, age: int) -> int:
    return age + (-1) ** i * (30 + 7 * (i % 6))


@pytest.fixture
def world():
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    version = f.model_version("m1")
    images = []
    for i in range(N):
        age = 200 + 150 * i
        image = f.image(north, age_days=age, sex="MF"[i % 2])
        f.prediction(image, version, age_days=predicted(i, age))
        f.confirm(image, lead)
        images.append(image)
    chosen = validation_set_create(name="cal", sites=[north], user=lead)
    frozen = validation_set_freeze(validation_set=chosen, user=lead)
    return {"site": north, "lead": lead, "model": version, "images": images, "frozen": frozen}


def calibrate(*args: str) -> str:
    out = io.StringIO()
    call_command("calibrate", *args, stdout=out)
    return out.getvalue()


def test_calibrate_stores_an_audited_record_and_gives_every_prediction_its_interval(world):
    assert Prediction.objects.filter(interval_low_days__isnull=False).count() == 0
    output = calibrate("--model", "m1", "--validation-set", "cal:1", "--coverage", "0.9")
    assert f"{N} items" in output
    assert f"{N} predictions updated" in output

    calibration = calibration_current(version=world["model"])
    assert (calibration.validation_set, calibration.validation_set_version) == ("cal", 1)
    assert calibration.manifest_sha256 == world["frozen"].manifest_sha256
    assert calibration.record["n"] == N
    event = AuditEvent.objects.get(action="model.calibrate")
    assert event.target == "m1"
    assert event.after["validation_set"] == "cal:1"

    for p in Prediction.objects.select_related("image"):
        expected = conformal.interval(calibration.record, p.age_days, "north")
        assert (p.interval_low_days, p.interval_high_days) == expected
    # A residual of +-(30..65) days: the interval holds every calibration case's recorded age.
    inside = [
        p.interval_low_days <= p.image.age_days <= p.interval_high_days
        for p in Prediction.objects.select_related("image")
    ]
    assert sum(inside) >= 0.9 * N

    client = APIClient()
    client.force_authenticate(world["lead"])
    rows = client.get("/api/predictions/").json()["results"]
    assert rows
    assert all(r["interval_low_days"] is not None for r in rows)
    assert all(r["interval_low_days"] <= r["age_days"] <= r["interval_high_days"] for r in rows)
    image = world["images"][0]
    shown = client.get(f"/api/images/{image.pk}/").json()["prediction"]
    stored = Prediction.objects.get(image=image)
    assert (shown["interval_low_days"], shown["interval_high_days"]) == (
        stored.interval_low_days,
        stored.interval_high_days,
    )


def test_calibrations_are_append_only_and_the_latest_is_current(world):
    calibrate("--model", "m1", "--validation-set", "cal")
    calibrate(
        "--model", "m1", "--validation-set", "cal", "--coverage", "0.8", "--taxonomy", "predicted"
    )
    assert Calibration.objects.count() == 2
    current = calibration_current(version=world["model"])
    assert current.coverage == 0.8
    assert current.record["taxonomy"] == "predicted"
    with pytest.raises(AppendOnlyError):
        Calibration.objects.filter(pk=current.pk).update(coverage=0.5)


def test_an_uncalibrated_version_has_null_intervals_in_the_api(world):
    client = APIClient()
    client.force_authenticate(world["lead"])
    rows = client.get("/api/predictions/").json()["results"]
    assert rows
    assert all(r["interval_low_days"] is None for r in rows)
    assert all(r["interval_high_days"] is None for r in rows)


def test_calibrate_names_what_is_missing_and_refuses_bad_arguments(world):
    extra = f.image(world["site"], age_days=999)
    review_submit(
        image=extra,
        reviewer=world["lead"],
        decision="confirm",
        age_days=None,
        reason="",
        comment="",
        expected_revision=0,
    )
    chosen = validation_set_create(name="more", sites=[world["site"]], user=world["lead"])
    validation_set_freeze(validation_set=chosen, user=world["lead"])
    with pytest.raises(CommandError, match=rf"1 of {N + 1} items of more:1 have no prediction"):
        calibrate("--model", "m1", "--validation-set", "more", "--no-predict")
    with pytest.raises(CommandError, match="no model version nope"):
        calibrate("--model", "nope", "--validation-set", "cal")
    with pytest.raises(CommandError, match="coverage"):
        calibrate("--model", "m1", "--validation-set", "cal", "--coverage", "90")
    with pytest.raises(CommandError):
        calibrate("--model", "m1", "--validation-set", "absent")
    assert not Calibration.objects.exists()


def test_the_interval_rule_scores_by_the_interval_and_rescoring_follows_the_rule(world):
    kwargs = {"card": f.CARD, "predicted_days": 1000, "sex": "F", "interval": (900, 1200)}
    with override_settings(OUTLIER_RULE="interval"):
        # Recorded inside on the high side (reach 200) and outside on the low side (reach 100).
        assert services.outlier_score(recorded_days=1100, **kwargs) == pytest.approx(0.5)
        assert services.outlier_score(recorded_days=850, **kwargs) == pytest.approx(1.5)
        # An uncalibrated version keeps the expected-error rule.
        uncalibrated = services.outlier_score(**{**kwargs, "interval": None}, recorded_days=850)
    with override_settings(OUTLIER_RULE="expected_error"):
        by_error = services.outlier_score(recorded_days=850, **kwargs)
    # 150 days over the card's 3 months for "1-3 F", whatever the interval.
    assert by_error == pytest.approx(150 / 30.4375 / 3.0)
    assert uncalibrated == pytest.approx(by_error)

    # The queue's scores are triage's (portal/predictions/triage.py), which start from this rule.
    triage_rescore(version=world["model"])
    before = dict(Prediction.objects.values_list("pk", "score"))
    calibrate("--model", "m1", "--validation-set", "cal")
    assert dict(Prediction.objects.values_list("pk", "score")) == before  # default rule
    with override_settings(OUTLIER_RULE="interval"):
        calibrate("--model", "m1", "--validation-set", "cal")
        after = dict(Prediction.objects.values_list("pk", "score"))
        assert triage_rescore(version=world["model"]) == 0  # the stored scores are current
        for p in Prediction.objects.select_related("image"):
            outside = not p.interval_low_days <= p.image.age_days <= p.interval_high_days
            score = services.outlier_score(
                card=f.CARD,
                predicted_days=p.age_days,
                recorded_days=p.image.age_days,
                sex=p.image.sex,
                interval=(p.interval_low_days, p.interval_high_days),
            )
            assert (score > 1) == outside
    assert after != before


def test_a_new_prediction_of_a_calibrated_version_is_stored_with_its_interval(world):
    calibrate("--model", "m1", "--validation-set", "cal")
    image = f.image(world["site"], age_days=3000)
    services.prediction_results_store(
        answer={
            "job": None,
            "model": "m1",
            "worker": "w",
            "results": [{"image": image.pk, "age_days": 3100, "heatmap": ""}],
        }
    )
    stored = Prediction.objects.get(image=image)
    record = calibration_current(version=world["model"]).record
    assert (stored.interval_low_days, stored.interval_high_days) == conformal.interval(
        record, 3100, "north"
    )


def test_the_report_shows_coverage_once_the_model_is_calibrated(world):
    report = report_create(version=world["frozen"], model=world["model"], build=False)
    assert report_compute(report=report)["coverage"] is None
    calibrate("--model", "m1", "--validation-set", "cal")
    coverage = report_compute(report=report)["coverage"]
    assert coverage["goal"] == 0.9
    assert coverage["calibration"]["in_sample"] is True
    assert coverage["overall"]["n"] == N
    rows = [coverage["overall"], *coverage["by_group"].values(), coverage["by_site"]["north"]]
    for row in rows:
        if row["n"]:
            assert row["ci_low"] <= row["coverage"] <= row["ci_high"]
    # The same figures as the conformal module on the same cases.
    inside = sum(
        p.interval_low_days <= p.image.age_days <= p.interval_high_days
        for p in Prediction.objects.select_related("image")
    )
    assert coverage["overall"]["covered"] == inside


@pytest.mark.slow  # real workers predict the set first
@pytest.mark.django_db(transaction=True)
def test_calibrate_predicts_the_missing_items_through_the_inference_queue_first(
    start_worker, tmp_path
):
    start_worker("default", "default", pool="threads")
    start_worker("inference", "inference", app="inference_worker")
    north = f.site("north")
    lead = f.user("lena", "lead", north)
    for i in range(20):
        image = f.image(north, age_days=300 + 250 * i, dicom=True)
        review_submit(
            image=image,
            reviewer=lead,
            decision="confirm",
            age_days=None,
            reason="",
            comment="",
            expected_revision=0,
        )
    validation_set_freeze(validation_set=validation_set_create(name="cal", sites=[north]))
    make_checkpoint(tmp_path / "ckpt", name="tiny")
    tiny = services.model_version_register(folder=tmp_path / "ckpt", activate=True)

    output = calibrate("--model", "tiny", "--validation-set", "cal")
    assert "20 items" in output
    stored = Prediction.objects.filter(model_version=tiny, error="")
    assert stored.count() == 20
    assert not stored.filter(interval_low_days__isnull=True).exists()
    assert calibration_current(version=tiny).record["n"] == 20
