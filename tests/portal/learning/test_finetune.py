"""Training jobs: who may start one, and the `finetune` command end to end through a real Redis,
the real `default` and `inference` workers, down to the new version, its card's provenance,
the report against the parent on a held-out set and the lead's activation."""

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from inference_worker import progress, recalibration
from inference_worker.synthetic import generate
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.services import upload_create, upload_process
from portal.learning import selectors, services
from portal.learning.models import TrainingJob
from portal.operations.management.commands import run_portal
from portal.predictions.models import ModelVersion, Prediction
from portal.predictions.services import model_version_register
from portal.reports.models import Report
from portal.validation.services import validation_set_create, validation_set_freeze
from tests.conftest import manage, wait_for
from tests.portal import factories as f
from tests.portal.predictions.test_jobs import make_checkpoint

PHANTOMS = 28  # of both sexes: the boys are learned from, the girls held out


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finetune-phantoms")
    generate(folder, PHANTOMS, seed=19, profile="north", workers=2)
    (folder / "manifest.csv").unlink()
    return folder


def east_world(phantoms: Path, tmp_path: Path) -> dict:
    """Site `east`, its films ingested and confirmed by its lead, boys frozen in `east-boys` and
    girls (other patients) in `east-girls`, and an unactivated parent version."""
    site = f.site("east")
    lead = f.user("lena", "lead", site)
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI), sources=[Source.given(phantoms)]
    )
    for image in Image.objects.filter(upload=upload):
        f.confirm(image, lead)
    frozen = {}
    for name, sex in (("east-boys", "M"), ("east-girls", "F")):
        chosen = validation_set_create(name=name, sites=[site], sex=sex, user=lead)
        frozen[name] = validation_set_freeze(validation_set=chosen, user=lead)
    # The demo recipe's pooling: a fine-tune keeps the parent's (its head's shape depends on it).
    make_checkpoint(tmp_path / "parent", width=8, size=64, name="parent", pool="avgmax")
    parent = model_version_register(folder=tmp_path / "parent", name="parent")
    return {"site": site, "lead": lead, "parent": parent, **frozen}


@pytest.mark.django_db
def test_only_a_lead_of_the_sets_sites_starts_a_training_job(phantoms, tmp_path):
    world = east_world(phantoms, tmp_path)
    reviewer = f.user("rita", "reviewer", world["site"])
    body = {
        "parent": "parent",
        "validation_sets": ["east-boys:1"],
        "name": "east-linear",
        "recalibrate_only": True,
        "held_out": "east-girls",
    }
    client = APIClient()
    client.force_authenticate(reviewer)
    refused = client.post("/api/training-jobs/", body, format="json")
    assert refused.status_code == 403, refused.content
    assert not TrainingJob.objects.exists()

    client.force_authenticate(world["lead"])
    started = client.post("/api/training-jobs/", body, format="json")
    assert started.status_code == 201, started.content
    job = started.json()
    boys = world["east-boys"].item_count
    assert (job["mode"], job["cases"], job["held_out"]) == ("recalibrate", boys, "east-girls:1")
    assert job["validation_sets"] == [
        {
            "name": "east-boys",
            "version": 1,
            "manifest_sha256": world["east-boys"].manifest_sha256,
            "items": boys,
        }
    ]
    assert job["state"] == "queued"
    assert job["model"] is None
    # The reviewer sees the job (a role on its site) but may not activate it.
    client.force_authenticate(reviewer)
    assert client.get(f"/api/training-jobs/{job['id']}/").status_code == 200
    assert client.post(f"/api/training-jobs/{job['id']}/activate/").status_code == 403


@pytest.mark.django_db
def test_a_held_out_set_sharing_patients_with_the_cases_is_refused(phantoms, tmp_path):
    world = east_world(phantoms, tmp_path)
    with pytest.raises(services.TrainingError, match="shares .* patients"):
        services.training_job_create(
            parent=world["parent"],
            versions=[world["east-boys"]],
            holdout=world["east-boys"],
            name="east-overlap",
            recalibrate_only=True,
        )
    assert not TrainingJob.objects.exists()


def start_workers(start_worker) -> None:
    start_worker("default", "default", pool="threads")
    start_worker("inference", "inference", app="inference_worker")


def finished_report(job: TrainingJob, timeout_s: float = 120) -> Report:
    wait_for(
        lambda: Report.objects.get(pk=job.report_id).finished_at is not None,
        timeout_s=timeout_s,
        what=f"report {job.report_id}",
    )
    return Report.objects.get(pk=job.report_id)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_recalibrate_only_registers_the_parents_weights_with_the_fit_and_a_report(
    phantoms, tmp_path, data_dir, start_worker
):
    world = east_world(phantoms, tmp_path)
    start_workers(start_worker)
    done = manage(
        "finetune",
        "--parent",
        "parent",
        "--validation-set",
        "east-boys",
        "--name",
        "east-isotonic",
        "--recalibrate-only",
        "--method",
        "isotonic",
        "--held-out",
        "east-girls:1",
        "--wait",
        data_dir=data_dir,
    )
    assert done.returncode == 0, done.stderr
    job = TrainingJob.objects.get(name="east-isotonic")
    assert job.state == TrainingJob.State.DONE, job.failure_reason
    version = job.result_version
    assert "east-isotonic registered" in done.stdout
    assert not version.is_active
    # Same weights; the card holds the fit and where it came from.
    assert version.sha256 == world["parent"].sha256
    card = json.loads((data_dir / version.path / "model_card.json").read_text())
    (step,) = card["recalibration"]
    boys = world["east-boys"]
    assert (step["method"], step["cases"]) == ("isotonic", boys.item_count)
    assert card["parent"] == {"name": "parent", "sha256": world["parent"].sha256}
    assert card["provenance"]["validation_sets"] == [
        {
            "name": "east-boys",
            "version": 1,
            "manifest_sha256": boys.manifest_sha256,
            "items": boys.item_count,
        }
    ]
    assert card["provenance"]["site"] == "east"

    # The report against the parent on the girls, built from both versions' predictions: the
    # worker applied the recalibration to the parent's output.
    report = finished_report(job)
    assert report.state == Report.State.DONE, report.failure_reason
    assert (report.model_version, report.compare_version) == (version, world["parent"])
    assert report.result["overall"]["n"] == world["east-girls"].item_count
    parent_ages = dict(
        Prediction.objects.filter(model_version=world["parent"]).values_list("image_id", "age_days")
    )
    new_ages = dict(
        Prediction.objects.filter(model_version=version).values_list("image_id", "age_days")
    )
    ids = sorted(new_ages)
    # Fitted for east, applied to east's films (the report's set is east's girls).
    assert step["site"] == "east"
    parent = np.array([parent_ages[i] for i in ids], dtype=float)
    expected = recalibration.apply(step, parent, ["east"] * len(ids))
    assert recalibration.apply(step, parent, ["north"] * len(ids)).tolist() == parent.tolist()
    knots_x, knots_y = np.array(step["x"]), np.array(step["y"])
    gaps = np.diff(knots_x)
    steepest = float(np.max(np.abs(np.diff(knots_y)[gaps > 0] / gaps[gaps > 0]), initial=0.0))
    # The parent's stored age is rounded to a day before the test applies the fit to it.
    tolerance = 0.5 * steepest + 1
    assert np.abs(np.array([new_ages[i] for i in ids]) - expected).max() <= tolerance

    # Activation is the lead's decision, beside the report.
    client = APIClient()
    client.force_login(world["lead"])  # the pages use the session
    page = client.get(f"/jobs/training/{job.pk}/")
    assert page.status_code == 200
    assert b'id="training-activate"' in page.content
    activated = client.post(f"/api/training-jobs/{job.pk}/activate/")
    assert activated.status_code == 200, activated.content
    assert ModelVersion.objects.get(is_active=True) == version
    assert activated.json()["report"]["parent_mae_months"] == pytest.approx(
        report.result["compare"]["overall"]["mae_months"]
    )
    jobs_page = client.get("/jobs/")
    assert f'data-training-job="{job.pk}"'.encode() in jobs_page.content


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.django_db(transaction=True)
def test_a_one_epoch_fine_tune_becomes_a_version_whose_card_states_its_provenance(
    phantoms, tmp_path, data_dir, start_worker
):
    world = east_world(phantoms, tmp_path)
    start_workers(start_worker)
    with_lead = services.training_job_request(
        user=world["lead"],
        parent="parent",
        validation_sets=["east-boys:1"],
        name="east-tuned",
        epochs=1,
    )
    wait_for(
        lambda: TrainingJob.objects.get(pk=with_lead.pk).finished_at is not None,
        timeout_s=180,
        what="the training job",
    )
    job = TrainingJob.objects.get(pk=with_lead.pk)
    assert job.state == TrainingJob.State.DONE, job.failure_reason
    version = job.result_version
    assert version.sha256 != world["parent"].sha256
    assert not version.is_active
    card = version.card
    boys = world["east-boys"]
    assert card["parent"] == {"name": "parent", "sha256": world["parent"].sha256}
    provenance = card["provenance"]
    assert provenance["validation_sets"][0]["manifest_sha256"] == boys.manifest_sha256
    assert provenance["epochs"] == card["training"]["epochs"] == 1
    split = provenance["split"]
    assert split["train_images"] + split["validation_images"] == boys.item_count
    assert split["train_patients"] + split["validation_patients"] <= boys.item_count
    assert job.split == split  # the job states the split the worker made
    assert card["normalisation"] == world["parent"].card["normalisation"]
    assert card["pool"] == "avgmax"
    assert "recalibration" not in card
    status = selectors.training_job_status(job=job)
    assert (status["state"], status["progress"], status["model"]) == ("done", 1.0, "east-tuned")


@pytest.mark.django_db
def test_the_sweep_sends_again_only_queued_jobs_no_worker_has_started(
    phantoms, tmp_path, django_capture_on_commit_callbacks
):
    world = east_world(phantoms, tmp_path)
    jobs = [
        services.training_job_create(
            parent=world["parent"],
            versions=[world["east-boys"]],
            name=name,
            recalibrate_only=True,
        )
        for name in ("east-waiting", "east-started")
    ]
    started = data_dir_of(jobs[1])
    progress.write(started, state=progress.PREPROCESSING, images=1, epochs=0)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    TrainingJob.objects.update(sent_at=long_ago)

    # The sends wait for the commit (not executed here: no worker should take them).
    with django_capture_on_commit_callbacks() as sends:
        assert services.training_job_resend() == 1
    assert len(sends) == 1
    waiting, running = (TrainingJob.objects.get(pk=j.pk) for j in jobs)
    assert waiting.sent_at > long_ago
    assert running.sent_at == long_ago
    assert selectors.training_job_status(job=running)["state"] == "running"
    assert services.training_job_resend() == 0  # sent just now: not yet due again


@pytest.mark.django_db
def test_run_portal_s_start_sends_a_waiting_training_job_again(
    phantoms, tmp_path, django_capture_on_commit_callbacks
):
    """A job queued while the broker was down starts with the portal, not an hour later when
    beat's sweep finds it."""
    world = east_world(phantoms, tmp_path)
    job = services.training_job_create(
        parent=world["parent"], versions=[world["east-boys"]], name="east-late",
        recalibrate_only=True,
    )  # fmt: skip
    TrainingJob.objects.update(sent_at=timezone.now() - dt.timedelta(seconds=5))
    out = io.StringIO()
    with django_capture_on_commit_callbacks() as sends:
        run_portal.Command(stdout=out)._resend_waiting_work()
    assert len(sends) == 1
    assert "1 training jobs" in out.getvalue()
    assert TrainingJob.objects.get(pk=job.pk).sent_at > timezone.now() - dt.timedelta(seconds=5)


def data_dir_of(job: TrainingJob) -> Path:
    return Path(settings.DATA_DIR) / services.job_folder(job)
