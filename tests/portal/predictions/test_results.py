"""Storing worker answers and the (job, image) rows: counted once, stored in bulk, failures
retried, unreadable images marked, no server path stored or served; cursor-paged lists."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from portal.ingest.models import Image, Upload
from portal.predictions import services
from portal.predictions.models import JobImage, Prediction, PredictionJob
from portal.review import selectors as review_selectors
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


def success(image: Image, age_days: int = 1500) -> dict:
    return {"image": image.pk, "age_days": age_days, "heatmap": f"heatmaps/{image.uuid}.png"}


def failure(image: Image, error: str, *, unreadable: bool = False) -> dict:
    return {"image": image.pk, "error": error, "unreadable": unreadable}


def answer(version, job, results: list[dict]) -> dict:
    return {
        "job": job.pk if job else None,
        "model": version.name,
        "worker": "w",
        "results": results,
    }


@pytest.fixture
def north():
    return f.site("north")


def test_overlapping_jobs_count_each_image_once_however_often_answers_arrive(north):
    version = f.model_version()
    first_upload = [f.image(north) for _ in range(3)]
    later = Upload.objects.create(site=north, source="cli")
    other = f.image(north)
    Image.objects.filter(pk=other.pk).update(upload=later)
    upload_job = services.prediction_job_create(upload=first_upload[0].upload)
    site_job = services.prediction_job_create(site=north)
    assert (upload_job.total, site_job.total) == (3, 4)

    batch = answer(version, upload_job, [success(i) for i in first_upload])
    for _ in range(3):  # redelivered
        services.prediction_results_store(answer=batch)
    # the site job's own batch of the same images, answered later
    services.prediction_results_store(answer=answer(version, site_job, [success(first_upload[0])]))

    upload_job.refresh_from_db()
    site_job.refresh_from_db()
    assert (upload_job.state, upload_job.done_count, upload_job.failed_count) == ("done", 3, 0)
    assert (site_job.state, site_job.done_count) == ("running", 3)
    assert JobImage.objects.get(job=site_job, image=other).state == "pending"
    assert Prediction.objects.count() == 3


def test_an_answer_is_stored_with_the_same_queries_whatever_the_batch_size(north):
    version = f.model_version()

    def store(count: int) -> int:
        images = [f.image(north) for _ in range(count)]
        job = services.prediction_job_create(image_ids=[i.pk for i in images])
        results = [success(i) for i in images[1:]] + [failure(images[0], "out of memory")]
        with CaptureQueriesContext(connection) as queries:
            services.prediction_results_store(answer=answer(version, job, results))
        job.refresh_from_db()
        assert (job.done_count, job.failed_count) == (count - 1, 1)
        return len(queries)

    assert store(4) == store(16)


def test_a_stored_failure_is_replaced_by_a_retry_and_a_stored_success_never_is(north):
    version = f.model_version()
    flaky, good = f.image(north), f.image(north)
    job = services.prediction_job_create(site=north)
    services.prediction_results_store(
        answer=answer(version, job, [failure(flaky, "CUDA out of memory"), success(good, 1500)])
    )
    kept = Prediction.objects.get(image=good)

    retry = services.prediction_job_create(site=north, retry_failed=True)
    assert retry.total == 1
    assert list(JobImage.objects.filter(job=retry).values_list("image", flat=True)) == [flaky.pk]
    services.prediction_results_store(
        answer=answer(version, retry, [success(flaky, 1700), failure(good, "disk full")])
    )

    retried = Prediction.objects.get(image=flaky)
    assert (retried.error, retried.age_days, retried.job_id) == ("", 1700, retry.pk)
    assert retried.score is not None
    after = Prediction.objects.get(image=good)
    assert (after.pk, after.error, after.age_days, after.created_at) == (
        kept.pk,
        "",
        1500,
        kept.created_at,
    )
    retry.refresh_from_db()
    assert (retry.state, retry.done_count, retry.failed_count) == ("done", 1, 0)


def test_an_unreadable_image_is_marked_left_out_of_the_queue_and_of_retries(north):
    active = f.model_version("m1")
    newer = f.model_version("m2", active=False)
    image = f.image(north, age_days=1000)
    f.prediction(image, active, age_days=1000 + 600)  # a high score: in the review queue
    reviewer = f.user("rita", "reviewer", north)
    filters = review_selectors.QueueFilters()
    assert list(review_selectors.queue(user=reviewer, filters=filters)) != []
    retryable = f.image(north)

    services.prediction_results_store(
        answer=answer(
            newer,
            None,
            [
                failure(image, "cannot decode the pixel data (JPEG 2000)", unreadable=True),
                failure(retryable, "CUDA out of memory", unreadable=False),
            ],
        )
    )

    image.refresh_from_db()
    retryable.refresh_from_db()
    assert image.unreadable == "cannot decode the pixel data (JPEG 2000)"
    assert retryable.unreadable == ""
    assert list(review_selectors.queue(user=reviewer, filters=filters)) == []
    retry = services.prediction_job_create(site=north, model_version=newer, retry_failed=True)
    assert list(JobImage.objects.filter(job=retry).values_list("image", flat=True)) == [
        retryable.pk
    ]


def test_server_paths_are_never_stored_or_served(north, admin_user):
    version = f.model_version()
    broken, legacy = f.image(north), f.image(north)
    services.prediction_results_store(
        answer=answer(
            version,
            None,
            [
                failure(
                    broken,
                    "cannot read /srv/portal/var/images/north/x.dcm: 1 GiB of pixel data",
                    unreadable=True,
                )
            ],
        )
    )
    Prediction.objects.create(  # stored before the portal stripped paths
        image=legacy, site=north, model_version=version, error="[Errno 28] '/data/heatmaps/a.png'"
    )

    stored = Prediction.objects.get(image=broken)
    assert stored.error == "cannot read <path>: 1 GiB of pixel data"
    broken.refresh_from_db()
    assert "/srv" not in broken.unreadable
    api = APIClient()
    api.force_authenticate(admin_user)
    body = api.get("/api/predictions/").content.decode()
    assert "/srv" not in body
    assert "/data" not in body
    assert "<path>" in body


def test_prediction_and_job_lists_are_cursor_pages_without_counts(north, admin_user):
    version = f.model_version()
    images = [f.image(north) for _ in range(5)]
    for image in images:
        f.prediction(image, version, age_days=900)
    jobs = [PredictionJob.objects.create(model_version=version, site=north) for _ in range(3)]
    api = APIClient()
    api.force_authenticate(admin_user)

    seen, url = [], "/api/predictions/?limit=2"
    while url:
        page = api.get(url).json()
        assert set(page) == {"next", "previous", "results"}
        assert len(page["results"]) <= 2
        seen += [row["image"] for row in page["results"]]
        url = page["next"]
    assert seen == [i.pk for i in images]

    first = api.get("/api/jobs/?limit=2").json()
    assert [j["id"] for j in first["results"]] == [jobs[2].pk, jobs[1].pk]
    second = api.get(first["next"]).json()
    assert [j["id"] for j in second["results"]] == [jobs[0].pk]
    assert (second["next"], api.get(second["previous"]).json()["results"][0]["id"]) == (
        None,
        jobs[2].pk,
    )
    assert api.get("/api/jobs/?upload=null").status_code == 400
    assert api.get("/api/predictions/?cursor=nonsense").status_code == 400


def test_the_heatmap_scale_and_blank_flag_are_stored_and_served(north, admin_user):
    """Signed maps and whether they are blank, as the worker sends them; a worker from before
    signed maps sends neither, and its map reads as positive, blankness unknown."""
    version = f.model_version()
    signed, blank, legacy, failed = (f.image(north) for _ in range(4))
    results = [
        {**success(signed), "heatmap_scale": "signed", "heatmap_blank": False},
        {**success(blank), "heatmap_scale": "signed", "heatmap_blank": True},
        success(legacy),
        {**failure(failed, "broken"), "heatmap_scale": "signed", "heatmap_blank": True},
    ]
    services.prediction_results_store(answer=answer(version, None, results))
    stored = {
        p.image_id: (p.heatmap_scale, p.heatmap_blank)
        for p in Prediction.objects.filter(model_version=version)
    }
    assert stored[legacy.pk] == ("positive", None)
    assert stored[failed.pk][1] is None
    api = APIClient()
    api.force_authenticate(admin_user)
    served = {
        p["image"]: (p["heatmap_scale"], p["heatmap_blank"])
        for p in api.get("/api/predictions/").json()["results"]
    }
    assert served == {
        signed.pk: ("signed", False),
        blank.pk: ("signed", True),
        legacy.pk: ("positive", None),
        failed.pk: (None, None),
    }
    detail = api.get(f"/api/images/{blank.pk}/").json()["prediction"]
    assert (detail["heatmap_scale"], detail["heatmap_blank"]) == ("signed", True)
    assert detail["heatmap_url"]
