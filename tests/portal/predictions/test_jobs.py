"""Prediction jobs end to end: real Redis, real default and inference workers."""

from pathlib import Path

import pytest
import redis
import torch
from rest_framework.test import APIClient

from inference_worker import checkpoint
from inference_worker.model import build_model
from inference_worker.synthetic import generate
from portal.celery import app as celery_app
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.services import upload_create, upload_process
from portal.predictions import services
from portal.predictions.models import JobImage, ModelVersion, Prediction, PredictionJob
from tests.conftest import manage, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def make_checkpoint(
    folder: Path,
    *,
    width: int = 8,
    size: int = 64,
    name: str = "tiny",
    pool: str = "avg",
    card: dict | None = None,
) -> dict:
    """An untrained CA-ResNet-18 saved as a model version's folder (`card`: more fields)."""
    torch.manual_seed(0)
    model = build_model("ca_resnet18", width=width, pool=pool).eval()
    norm = {"input_mean": 0.5, "input_std": 0.25, "age_mean_days": 3000.0, "age_std_days": 1500.0}
    return checkpoint.save(
        folder,
        model,
        {
            "name": name,
            "architecture": "ca_resnet18",
            "width": width,
            "pool": pool,
            "input_size": size,
            "normalisation": norm,
            **(card or {}),
        },
    )


def ingest_phantoms(site, folder: Path, count: int) -> Upload:
    generate(folder, count, seed=4, profile="north")
    (folder / "manifest.csv").unlink()
    upload = upload_create(site=site, source=Upload.Source.CLI)
    return upload_process(upload=upload, sources=[Source.given(folder)])


def wait_job(job: PredictionJob, timeout_s: float = 120) -> PredictionJob:
    wait_for(
        lambda: PredictionJob.objects.get(pk=job.pk).finished_at is not None,
        timeout_s=timeout_s,
        what=f"job {job.pk}",
    )
    return PredictionJob.objects.get(pk=job.pk)


def job_of(upload: Upload, timeout_s: float = 60) -> PredictionJob:
    """The job the `default` worker makes when ingest's message says the upload is done."""
    wait_for(
        lambda: PredictionJob.objects.filter(upload=upload).exists(),
        timeout_s=timeout_s,
        what=f"the job of upload {upload.pk}",
    )
    return PredictionJob.objects.get(upload=upload)


def start_default_worker(start_worker, *, batch_size: int = 16, env: dict | None = None):
    """The `default` worker dispatches jobs, so the batch size is its setting."""
    env = {"PORTAL_PREDICT_BATCH_SIZE": str(batch_size), **(env or {})}
    return start_worker("default", "default", pool="threads", env=env)


@pytest.fixture
def workers(start_worker):
    start_default_worker(start_worker)
    return start_worker("inference", "inference", app="inference_worker")


def test_an_upload_is_predicted_automatically_once_per_image(
    site, start_worker, tmp_path, data_dir, admin_user
):
    start_default_worker(start_worker, batch_size=5)
    start_worker("inference", "inference", app="inference_worker")
    make_checkpoint(tmp_path / "ckpt")
    version = services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    upload = ingest_phantoms(site, tmp_path / "phantoms", 24)

    job = job_of(upload)
    assert (job.model_version, job.total) == (version, 24)
    job = wait_job(job)

    assert (job.state, job.done_count, job.failed_count, job.batches) == ("done", 24, 0, 5)
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == 24
    assert set(predictions.values_list("image", flat=True)) == set(
        Image.objects.values_list("pk", flat=True)
    )
    for p in predictions:
        assert p.age_days is not None
        assert (data_dir / p.heatmap).is_file()
        assert set(p.timing_ms) == {"load", "preprocess", "predict", "heatmap", "encode"}

    api = APIClient()
    image = Image.objects.first()
    assert api.get(f"/api/images/{image.pk}/").status_code in (401, 403)
    assert api.get(f"/api/images/{image.pk}/dicom/").status_code in (401, 403)
    assert api.get(f"/api/images/{image.pk}/heatmap/").status_code in (401, 403)
    api.force_authenticate(admin_user)
    status = api.get(f"/api/jobs/{job.pk}/").json()
    assert (status["state"], status["done"], status["progress"]) == ("done", 24, 1.0)
    detail = api.get(f"/api/images/{image.pk}/").json()
    assert detail["prediction"]["model"] == version.name
    assert detail["prediction"]["age_days"] == Prediction.objects.get(image=image).age_days
    heatmap = api.get(detail["prediction"]["heatmap_url"])
    assert heatmap.status_code == 200
    assert heatmap["Content-Type"] == "image/png"
    assert api.get(detail["dicom_url"]).status_code == 200
    listed = api.get(f"/api/predictions/?site={site.slug}&model={version.name}&limit=20").json()
    assert len(listed["results"]) == 20
    assert len(api.get(listed["next"]).json()["results"]) == 4
    assert api.get(f"/api/jobs/?upload={upload.pk}").json()["results"][0]["id"] == job.pk


def test_an_unreadable_image_fails_with_its_reason_while_the_rest_succeed(
    site, start_worker, tmp_path, data_dir
):
    make_checkpoint(tmp_path / "ckpt")
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    upload = ingest_phantoms(site, tmp_path / "phantoms", 6)  # its message waits for a worker
    broken = Image.objects.order_by("pk")[1]
    (data_dir / broken.file).write_bytes(b"not a dicom any more")
    start_default_worker(start_worker, batch_size=3)
    start_worker("inference", "inference", app="inference_worker")

    job = wait_job(job_of(upload))

    assert (job.state, job.done_count, job.failed_count) == ("done", 5, 1)
    failure = Prediction.objects.get(image=broken)
    assert failure.age_days is None
    assert "cannot read" in failure.error
    assert Prediction.objects.filter(error="").count() == 5


def test_two_inference_workers_share_one_job(site, start_worker, tmp_path):
    start_default_worker(start_worker, batch_size=2)
    start_worker("inference", "inference-a", app="inference_worker")
    start_worker("inference", "inference-b", app="inference_worker")
    make_checkpoint(tmp_path / "ckpt", width=16, size=128)
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)

    job = wait_job(job_of(ingest_phantoms(site, tmp_path / "phantoms", 24)))

    assert job.done_count == 24
    assert len(set(Prediction.objects.values_list("worker", flat=True))) == 2


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(site, start_worker, tmp_path):
    fast_recovery = {"TASK_HARD_LIMIT_S": "8"}  # messages of a dead worker return after ~9 s
    start_default_worker(start_worker, batch_size=4, env=fast_recovery)
    doomed = start_worker("inference", "doomed", app="inference_worker", env=fast_recovery)
    make_checkpoint(tmp_path / "ckpt", width=32, size=256)  # slow enough to be caught mid-batch
    services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    job = job_of(ingest_phantoms(site, tmp_path / "phantoms", 32))

    wait_for(lambda: Prediction.objects.exists(), timeout_s=120, what="the first results")
    doomed.kill()
    before = Prediction.objects.count()
    assert before < 32
    start_worker("inference", "rescuer", app="inference_worker", env=fast_recovery)
    job = wait_job(job, timeout_s=180)

    assert (job.state, job.done_count, job.failed_count) == ("done", 32, 0)
    assert Prediction.objects.count() == 32
    assert Prediction.objects.values("image").distinct().count() == 32


def test_registering_a_checkpoint_whose_weights_were_altered_is_refused(tmp_path, data_dir):
    make_checkpoint(tmp_path / "ckpt")
    state = torch.load(tmp_path / "ckpt" / "weights.pt", weights_only=True)
    key = next(iter(state))
    state[key] = state[key] + 0.5
    torch.save(state, tmp_path / "ckpt" / "weights.pt")

    result = manage("model_register", str(tmp_path / "ckpt"), "--activate", data_dir=data_dir)

    assert result.returncode == 1
    assert "does not match the model card" in result.stderr
    assert not ModelVersion.objects.exists()
    assert not (data_dir / "models").exists()


def test_only_one_version_is_active_and_activating_another_predicts_again(
    site, workers, tmp_path, data_dir
):
    first = make_checkpoint(tmp_path / "one", name="one")
    make_checkpoint(tmp_path / "two", width=16, name="two")
    ok = manage("model_register", str(tmp_path / "one"), "--activate", data_dir=data_dir)
    assert ok.returncode == 0
    assert "model version one active" in ok.stdout
    upload = ingest_phantoms(site, tmp_path / "phantoms", 4)
    wait_job(job_of(upload))
    assert (
        manage("model_register", str(tmp_path / "two"), "--activate", data_dir=data_dir).returncode
        == 0
    )
    assert list(ModelVersion.objects.filter(is_active=True).values_list("name", flat=True)) == [
        "two"
    ]
    assert ModelVersion.objects.get(name="one").sha256 == first["sha256"]

    result = manage("predict", "--site", site.slug, "--wait", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    assert "4 images queued for two" in result.stdout
    assert "done: 4 done, 0 failed" in result.stdout
    assert Prediction.objects.filter(model_version__name="two").count() == 4
    assert Prediction.objects.filter(model_version__name="one").count() == 4


def test_retry_failed_replaces_failures_and_never_a_stored_prediction(
    site, workers, tmp_path, data_dir
):
    ingest_phantoms(site, tmp_path / "phantoms", 3)
    make_checkpoint(tmp_path / "ckpt")
    version = services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    flaky, good, unreadable = Image.objects.order_by("pk")
    for image, age, error in [
        (flaky, None, "CUDA out of memory"),
        (good, 1234, ""),
        (unreadable, None, "cannot decode the pixel data"),
    ]:
        Prediction.objects.create(
            image=image, site=site, model_version=version, age_days=age, error=error
        )
    Image.objects.filter(pk=unreadable.pk).update(unreadable="cannot decode the pixel data")
    kept = Prediction.objects.get(image=good)

    result = manage("predict", "--site", site.slug, "--retry-failed", "--wait", data_dir=data_dir)

    assert result.returncode == 0, result.stderr
    assert f"1 failed images re-queued for {version.name}" in result.stdout
    assert "done: 1 done, 0 failed" in result.stdout
    assert "image/s" in result.stderr  # the progress bar
    retried = Prediction.objects.get(image=flaky)
    assert (retried.error, retried.age_days is not None) == ("", True)
    assert (data_dir / retried.heatmap).is_file()
    after = Prediction.objects.get(image=good)
    assert (after.pk, after.age_days, after.created_at) == (kept.pk, 1234, kept.created_at)
    assert Prediction.objects.get(image=unreadable).error == "cannot decode the pixel data"


def test_a_batch_that_killed_its_worker_is_split_and_a_repeat_offender_fails(
    site, workers, tmp_path, redis_url
):
    """Redeliveries are recognised by task id: the batch comes back as single images, and a
    single image that already killed workers MAX_ATTEMPTS times fails with that reason."""
    upload = ingest_phantoms(site, tmp_path / "phantoms", 3)
    make_checkpoint(tmp_path / "ckpt")
    version = services.model_version_register(folder=tmp_path / "ckpt", activate=True)
    job = PredictionJob.objects.create(model_version=version, upload=upload, total=3)
    images = list(Image.objects.order_by("pk"))
    JobImage.objects.bulk_create(JobImage(job=job, image=image) for image in images)

    def payload(batch, attempt):
        return {
            "job": job.pk,
            "attempt": attempt,
            "model": {"name": version.name, "path": version.path, "sha256": version.sha256},
            "images": [
                {
                    "id": i.pk,
                    "path": i.file,
                    "sex": i.sex,
                    "heatmap": f"heatmaps/{version.name}/{i.uuid}.png",
                }
                for i in batch
            ],
        }

    broker = redis.Redis.from_url(redis_url)
    for task_id in ("crashed-batch", "crashed-thrice"):
        broker.set(f"inference:started:{task_id}", 1)  # as if a worker had died running it
    celery_app.send_task(
        services.PREDICT_TASK,
        args=[payload(images[:2], 1)],
        queue="inference",
        task_id="crashed-batch",
    )
    celery_app.send_task(
        services.PREDICT_TASK,
        args=[payload(images[2:], 3)],
        queue="inference",
        task_id="crashed-thrice",
    )

    job = wait_job(job)
    assert (job.done_count, job.failed_count) == (2, 1)
    failure = Prediction.objects.get(image=images[2])
    assert "stopped while predicting it, 3 times" in failure.error
