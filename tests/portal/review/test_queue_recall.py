"""The review queue puts corrupted labels near the top: phantoms with label noise, predicted by a
small model trained here on clean phantoms, ranked by the real queue selector.

The prediction runs in this process through the inference worker's own code (`run_batch`, the
body of the `inference_worker.predict_batch` task) on the exact batches the portal queues, and
the answers are stored by the portal's own task body (`portal.predictions.store_results`).
"""

import os
from pathlib import Path

import pytest
import torch

from inference_worker import train
from inference_worker.predict import run_batch
from inference_worker.synthetic import generate
from portal.accounts.services import membership_grant
from portal.celery import app as celery_app
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload
from portal.ingest.selectors import upload_report
from portal.ingest.services import UPLOAD_DONE_TASK, upload_create, upload_process
from portal.predictions import dispatch, services, uploads
from portal.predictions.models import PredictionJob
from portal.predictions.tasks import store_results
from portal.review.selectors import QueueFilters, queue

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

WORKERS = os.cpu_count() or 1  # the phantoms and the split do not depend on it
TRAIN_IMAGES, TRAIN_SEED = 600, 5
NOISY_IMAGES, NOISY_SEED, LABEL_NOISE = 240, 11, 0.10
RECIPE = [
    "--arch",
    "ca_resnet18",
    "--width",
    "16",
    "--size",
    "64",
    "--epochs",
    "30",
    "--batch-size",
    "32",
    "--lr",
    "3e-3",
    "--val-fraction",
    "0.15",
    "--name",
    "recall-tiny",
]


@pytest.fixture
def one_torch_thread():
    """A model this small trains fastest on one thread (and the same on any number of cores);
    two threads on a busy two-core machine are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_tiny_model(folder: Path) -> Path:
    """A CA-ResNet-18 at width 16 on 64 x 64 inputs, trained on clean `north` phantoms."""
    data, out = folder / "clean", folder / "model"
    generate(data, TRAIN_IMAGES, TRAIN_SEED, "north", 0.0, WORKERS)
    args = ["--manifest", str(data / "manifest.csv"), "--out", str(out), *RECIPE]
    train.train(train.parser().parse_args([*args, "--workers", str(WORKERS)]))
    return out


def predict_in_process(monkeypatch, capture_on_commit, data_dir: Path, upload_sources):
    """Ingest (which hands the done upload to predictions by task name), run that task's
    body (which queues the prediction job), then answer every batch the portal sent."""
    sent: list[tuple[str, dict]] = []

    def capture(name: str, args: list, **options) -> None:
        sent.append((name, args if name == services.DISPATCH_TASK else args[0]))

    monkeypatch.setattr(celery_app, "send_task", capture)
    with capture_on_commit(execute=True):
        upload = upload_process(
            upload=upload_create(site=upload_sources[0], source=Upload.Source.CLI),
            sources=[Source.given(upload_sources[1])],
        )
    assert sent == [(UPLOAD_DONE_TASK, upload.pk)], "ingest did not hand the upload on"
    sent.clear()
    with capture_on_commit(execute=True):
        uploads.upload_done(upload_id=upload.pk)
    dispatches = [args for name, args in sent if name == services.DISPATCH_TASK]
    assert dispatches, "the upload queued no prediction job"
    sent.clear()
    for job_id, round_ in dispatches:
        dispatch.prediction_job_dispatch(job_id=job_id, round_=round_)
    assert sent, "the dispatch sent no prediction batches"
    for name, payload in sent:
        assert name == services.PREDICT_TASK
        answer = run_batch(payload, data_dir)
        store_results({**answer, "worker": "in-process"})
    return upload


def test_corrupted_labels_rank_high_in_the_review_queue_of_a_trained_model(
    site,
    tmp_path,
    data_dir,
    settings,
    monkeypatch,
    django_user_model,
    django_capture_on_commit_callbacks,
    one_torch_thread,
):
    settings.REVIEW = {**settings.REVIEW, "QUEUE_THRESHOLD": -1}  # the full ranking
    site.keep_file_names = True  # the phantoms' names map report lines to their labels
    site.save(update_fields=["keep_file_names"])
    reviewer = django_user_model.objects.create_user("rita", password="rita-password-123")
    membership_grant(actor=None, user=reviewer, site=site, role="reviewer")
    version = services.model_version_register(folder=train_tiny_model(tmp_path), activate=True)
    noisy = tmp_path / "noisy"
    rows = generate(noisy, NOISY_IMAGES, NOISY_SEED, "north", LABEL_NOISE, WORKERS)
    (noisy / "manifest.csv").unlink()

    upload = predict_in_process(
        monkeypatch, django_capture_on_commit_callbacks, data_dir, (site, noisy)
    )

    job = PredictionJob.objects.get(upload=upload, model_version=version)
    assert (job.state, job.done_count, job.failed_count) == ("done", NOISY_IMAGES, 0)
    image_of = {line["name"]: line["image"] for line in upload_report(upload=upload)["accepted"]}
    assert len(image_of) == NOISY_IMAGES
    recorded = dict(Image.objects.values_list("pk", "age_days"))
    assert all(recorded[image_of[r["file"]]] == r["recorded_age_days"] for r in rows)
    corrupted = {image_of[r["file"]] for r in rows if r["label_corrupted"]}
    k, n = len(corrupted), NOISY_IMAGES
    assert k == round(LABEL_NOISE * n)

    ranked = list(queue(user=reviewer, filters=QueueFilters()).values_list("image_id", flat=True))
    assert sorted(ranked) == sorted(image_of.values())
    recall = len(corrupted.intersection(ranked[: 2 * k])) / k
    random_expectation = 2 * k / n
    print(f"N {n}, k {k}, recall@2k {recall:.2f}, random {random_expectation:.2f}")
    # Measured: 0.50 with these seeds (0.62 before the single age rule of issue 15); 0.38 to
    # 0.62 over five train/noisy seed pairs (the phantoms vary in build independently of age,
    # so a label off by a year in a teenager is within the model's error). Random order puts 9
    # or more in front with probability about 3%.
    assert recall >= 1.75 * random_expectation, (recall, random_expectation)
