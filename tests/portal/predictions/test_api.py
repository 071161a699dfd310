"""The jobs and predictions API refuse what they cannot read with a 400 that names the
parameter, and the schema documents each of those answers."""

import pytest
from rest_framework.test import APIClient

from portal.predictions.models import PredictionJob
from tests.portal import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.mark.parametrize("query", ["upload=1&upload=1", "upload=", "upload=null", "limit=0"])
def test_job_list_refuses_a_repeated_empty_or_unreadable_parameter_by_name(api, query):
    response = api.get(f"/api/jobs/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_job_list_with_an_upload_filter_lists_only_its_jobs(api):
    north = f.site("north")
    version = f.model_version()
    image = f.image(north)
    own = PredictionJob.objects.create(model_version=version, upload=image.upload)
    PredictionJob.objects.create(model_version=version, site=north)
    page = api.get(f"/api/jobs/?upload={image.upload_id}").json()
    assert [j["id"] for j in page["results"]] == [own.pk]


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "site=a&site=b", "cursor=x"])
def test_prediction_list_refuses_a_bad_page_or_a_repeated_filter_by_name(api, query):
    response = api.get(f"/api/predictions/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_queueing_a_job_needs_exactly_one_target_and_says_so(api):
    f.site("north")
    both = api.post("/api/jobs/", {"site": "north", "upload": 1}, format="json")
    neither = api.post("/api/jobs/", {}, format="json")
    unreadable = api.post("/api/jobs/", {"site": "0", "upload": "{}"}, format="multipart")
    assert [r.status_code for r in (both, neither, unreadable)] == [400, 400, 400]
    assert both.json() == {"non_field_errors": ["give a site or an upload"]}
    assert "upload" in unreadable.json()


def test_schema_documents_the_400_of_every_jobs_and_predictions_operation(api):
    paths = api.get("/api/schema/?format=json").json()["paths"]
    for path, method in [
        ("/api/jobs/", "get"),
        ("/api/jobs/", "post"),
        ("/api/predictions/", "get"),
    ]:
        assert "400" in paths[path][method]["responses"], (path, method)
    assert {"404", "409"} <= set(paths["/api/jobs/"]["post"]["responses"])


def test_prediction_list_costs_the_same_queries_for_any_page_size_and_keeps_its_fields(
    api, django_assert_max_num_queries
):
    """Image, site and model come for the page in bulk (a join sorted every row in scope on
    SQLite), never once per row."""
    version = f.model_version()
    sites = [f.site("north"), f.site("south")]
    for i in range(12):
        f.prediction(f.image(sites[i % 2], age_days=900 + i), version, age_days=1000 + i)
    with django_assert_max_num_queries(8) as small:
        api.get("/api/predictions/?limit=2")
    with django_assert_max_num_queries(len(small.captured_queries)):
        page = api.get("/api/predictions/?limit=12").json()["results"]
    assert [p["site"] for p in page] == ["north", "south"] * 6
    assert [p["recorded_age_days"] for p in page] == list(range(900, 912))
    assert {p["model"] for p in page} == {version.name}
