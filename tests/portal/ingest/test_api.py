"""The REST interface, processed by a real Celery worker through a real Redis."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from portal.ingest.models import Image, Upload
from tests.conftest import manage, wait_for
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)


def _files(paths: list[Path], root: Path) -> dict:
    return {
        "files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths],
        "paths": [p.relative_to(root).as_posix() for p in paths],
    }


def _wait_done(client: APIClient, upload_id: int) -> dict:
    def finished() -> bool:
        return client.get(f"/api/uploads/{upload_id}/").json()["status"] in ("done", "failed")

    wait_for(finished, timeout_s=90, what=f"upload {upload_id}")
    return client.get(f"/api/uploads/{upload_id}/").json()


def _wait_swept(staging_dir: Path) -> None:
    """Until the upload's staged files are gone: the worker removes them as processing ends,
    just after the commit that makes the upload read "done" (a race the tests lost on CI)."""

    def swept() -> bool:
        return not [p for p in staging_dir.rglob("*") if p.is_file()]

    wait_for(swept, timeout_s=30, what="the staged files to go with the processing")


def _report(client: APIClient, upload_id: int, **query) -> list[dict]:
    """Every line of the upload's report, following the `next` links."""
    lines: list[dict] = []
    page = client.get(f"/api/uploads/{upload_id}/files/", query).json()
    lines += page["results"]
    while page["next"]:
        page = client.get(page["next"]).json()
        lines += page["results"]
    return lines


@pytest.fixture
def client(admin_user) -> APIClient:
    api = APIClient()
    api.force_authenticate(admin_user)
    return api


def _mixed_folder(root: Path) -> list[Path]:
    return [
        make_dicom(root / "a.dcm", sex="M"),
        make_dicom(root / "sub" / "b.dcm", birth_date=None, patient_age="010M"),
        make_dicom(root / "sub" / "ct.dcm", modality="CT"),
        make_dicom(root / "sub" / "noage.dcm", birth_date=None),
    ]


def test_rest_upload_is_processed_by_the_worker_and_reports_like_the_cli(
    client, site, default_worker, tmp_path, data_dir, staging_dir
):
    root = tmp_path / "export"
    paths = _mixed_folder(root)

    response = client.post(
        f"/api/sites/{site.slug}/uploads/", _files(paths, root), format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "submitted"
    status = _wait_done(client, response.json()["id"])

    assert status["status"] == "done"
    assert (status["total_files"], status["processed_files"]) == (4, 4)
    assert status["counts"] == {"accepted": 2, "duplicates": 0, "rejected": 2}
    assert status["progress"] == 1.0
    assert "accepted" not in status  # the status document is small; the report is paged
    assert Image.objects.count() == 2
    _wait_swept(staging_dir)  # the staged files go with the processing

    # The same files through the CLI into another site give the same report, by position.
    cli = manage(
        "ingest", str(root), "--site", "other", "--create-site", "--json", data_dir=data_dir
    )
    report = json.loads(cli.stdout)
    rest = _report(client, status["id"])
    assert [line["file"] for line in rest] == ["#1", "#2", "#3", "#4"]

    def strip(lines: list[dict]) -> list[dict]:
        drop = ("image", "name", "outcome")
        return sorted(({k: v for k, v in e.items() if k not in drop} for e in lines), key=str)

    for group, outcome in (("accepted", "accepted"), ("rejected", "rejected")):
        assert strip([e for e in rest if e["outcome"] == outcome]) == strip(report[group]), group
    assert [e["name"] for e in report["rejected"]] == ["sub/ct.dcm", "sub/noage.dcm"]


def test_upload_in_batches_then_submit_twice_harmlessly(client, site, default_worker, tmp_path):
    root = tmp_path / "export"
    first, second = make_dicom(root / "1.dcm"), make_dicom(root / "2.dcm")
    created = client.post(
        f"/api/sites/{site.slug}/uploads/",
        {**_files([first], root), "finish": "false"},
        format="multipart",
    ).json()
    assert (created["status"], created["received_files"]) == ("receiving", 1)
    assert created["expires_at"] is not None
    added = client.post(
        f"/api/uploads/{created['id']}/files/", _files([second], root), format="multipart"
    )
    assert added.status_code == 200
    assert (added.json()["received_files"], added.json()["total_files"]) == (2, 2)

    submitted = client.post(f"/api/uploads/{created['id']}/submit/")
    assert submitted.status_code == 202
    assert submitted.json()["status"] in ("submitted", "processing", "done")
    assert submitted.json()["expires_at"] is None
    again = client.post(f"/api/uploads/{created['id']}/submit/")
    assert again.status_code in (200, 202)
    assert again.json()["status"] != "receiving"

    late = client.post(
        f"/api/uploads/{created['id']}/files/", _files([first], root), format="multipart"
    )
    assert late.status_code == 409
    assert "takes no more files" in late.json()["detail"]
    status = _wait_done(client, created["id"])
    assert (status["status"], status["processed_files"]) == ("done", 2)
    lines = _report(client, created["id"])
    assert [(e["file"], e["outcome"]) for e in lines] == [("#1", "accepted"), ("#2", "accepted")]
    assert "name" not in lines[0]  # the site keeps no file names
    assert Image.objects.count() == 2


def test_report_is_paged_by_cursor_and_filtered_by_outcome(client, site, default_worker, tmp_path):
    root = tmp_path / "export"
    paths = _mixed_folder(root)
    upload_id = client.post(
        f"/api/sites/{site.slug}/uploads/", _files(paths, root), format="multipart"
    ).json()["id"]
    _wait_done(client, upload_id)

    first = client.get(f"/api/uploads/{upload_id}/files/", {"limit": 3}).json()
    assert [e["file"] for e in first["results"]] == ["#1", "#2", "#3"]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert ([e["file"] for e in second["results"]], second["next"]) == (["#4"], None)
    assert client.get(second["previous"]).json()["results"] == first["results"]

    rejected = _report(client, upload_id, outcome="rejected", limit=1)
    assert [(e["file"], e["outcome"]) for e in rejected] == [("#3", "rejected"), ("#4", "rejected")]
    assert "modality CT" in rejected[0]["reason"]
    accepted = _report(client, upload_id, outcome="accepted")
    assert {"image", "sex", "age_days", "age_source"} <= set(accepted[0])
    assert client.get(f"/api/uploads/{upload_id}/files/", {"outcome": "x"}).status_code == 400
    assert client.get(f"/api/uploads/{upload_id}/files/", {"outcome": ""}).status_code == 400
    assert client.get(f"/api/uploads/{upload_id}/files/", {"cursor": "x"}).status_code == 400


def test_sites_that_keep_names_see_them_in_the_report(client, site, default_worker, tmp_path):
    site.keep_file_names = True
    site.save()
    root = tmp_path / "export"
    paths = [make_dicom(root / "study" / "a.dcm")]
    upload_id = client.post(
        f"/api/sites/{site.slug}/uploads/", _files(paths, root), format="multipart"
    ).json()["id"]
    _wait_done(client, upload_id)
    assert [(e["file"], e["name"]) for e in _report(client, upload_id)] == [("#1", "study/a.dcm")]


def test_uploads_list_is_cursor_paged_newest_first(client, site, tmp_path):
    for _ in range(3):
        client.post(
            f"/api/sites/{site.slug}/uploads/",
            {**_files([make_dicom(tmp_path / "a.dcm")], tmp_path), "finish": "false"},
            format="multipart",
        )
    ids = list(Upload.objects.order_by("-id").values_list("id", flat=True))
    page = client.get("/api/uploads/", {"limit": 2}).json()
    assert [u["id"] for u in page["results"]] == ids[:2]
    assert page["results"][0]["status"] == "receiving"
    rest = client.get(page["next"]).json()
    assert ([u["id"] for u in rest["results"]], rest["next"]) == (ids[2:], None)
    assert client.get("/api/uploads/", {"site": "elsewhere"}).json()["results"] == []
    assert len(client.get("/api/uploads/", {"status": "receiving"}).json()["results"]) == 3
    assert client.get("/api/uploads/", {"status": "bogus"}).status_code == 400
    assert client.get("/api/uploads/", {"status": ""}).status_code == 400
    repeated = client.get("/api/uploads/?status=receiving&status=done")
    assert (repeated.status_code, list(repeated.json())) == (400, ["status"])


def test_api_needs_a_login_and_names_bad_requests(site, tmp_path):
    anonymous = APIClient()
    path = make_dicom(tmp_path / "a.dcm")
    assert anonymous.post(
        f"/api/sites/{site.slug}/uploads/", _files([path], tmp_path)
    ).status_code in (401, 403)
    assert anonymous.get("/api/uploads/1/").status_code in (401, 403)
    assert anonymous.get("/api/uploads/").status_code in (401, 403)
    assert Upload.objects.count() == 0


def test_api_rejects_unknown_site_and_empty_upload(client, site):
    assert client.post("/api/sites/nowhere/uploads/", {}, format="multipart").status_code == 404
    response = client.post(f"/api/sites/{site.slug}/uploads/", {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()


def test_openapi_schema_describes_the_upload_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths, components = schema["paths"], schema["components"]["schemas"]
    create = paths["/api/sites/{slug}/uploads/"]["post"]
    body = create["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    assert body.endswith("/UploadCreateInput")
    assert "files" in components["UploadCreateInput"]["properties"]
    add = paths["/api/uploads/{upload_id}/files/"]["post"]
    body = add["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    assert "files" in components[body.rsplit("/", 1)[1]]["properties"]
    assert set(add["responses"]) >= {"200", "400", "404", "409"}
    submit = paths["/api/uploads/{upload_id}/submit/"]["post"]
    assert set(submit["responses"]) >= {"200", "202", "404", "409"}
    assert "submitted" in components["UploadStatusEnum"]["enum"]
    assert "expired" in components["UploadStatusEnum"]["enum"]
    assert "cursor" in {p["name"] for p in paths["/api/uploads/"]["get"]["parameters"]}
    listed, one = paths["/api/uploads/"]["get"], paths["/api/uploads/{upload_id}/"]["get"]
    assert listed["operationId"] != one["operationId"]
    assert "400" in listed["responses"]
    files = paths["/api/uploads/{upload_id}/files/"]["get"]
    assert {"cursor", "limit", "outcome"} <= {p["name"] for p in files["parameters"]}


def test_a_file_over_the_size_limit_is_rejected_by_name_and_the_rest_is_stored(
    client, site, default_worker, tmp_path, settings, staging_dir
):
    root = tmp_path / "export"
    small = make_dicom(root / "small.dcm")
    big = make_dicom(root / "big.dcm", rows=256, cols=256)
    settings.PORTAL_MAX_FILE_BYTES = (small.stat().st_size + big.stat().st_size) // 2

    response = client.post(
        f"/api/sites/{site.slug}/uploads/", _files([small, big], root), format="multipart"
    )
    assert response.status_code == 201, response.content
    status = _wait_done(client, response.json()["id"])

    assert status["status"] == "done"
    assert status["counts"] == {"accepted": 1, "duplicates": 0, "rejected": 1}
    lines = {line["file"]: line for line in _report(client, status["id"])}
    assert lines["#1"]["outcome"] == "accepted"
    assert lines["#2"]["outcome"] == "rejected"
    assert "limit" in lines["#2"]["reason"]
    _wait_swept(staging_dir)
