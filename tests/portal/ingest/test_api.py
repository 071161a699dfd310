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
    client, site, default_worker, tmp_path, data_dir
):
    root = tmp_path / "export"
    paths = _mixed_folder(root)

    response = client.post(
        f"/api/sites/{site.slug}/uploads/", _files(paths, root), format="multipart"
    )
    assert response.status_code == 201, response.content
    detail = _wait_done(client, response.json()["id"])

    assert detail["status"] == "done"
    assert (detail["total_files"], detail["processed_files"]) == (4, 4)
    assert detail["counts"] == {"accepted": 2, "duplicates": 0, "rejected": 2}
    assert detail["progress"] == 1.0
    assert Image.objects.count() == 2
    assert not (data_dir / "staging" / str(detail["id"])).exists()

    # The same files through the CLI into another site give the same report.
    cli = manage(
        "ingest", str(root), "--site", "other", "--create-site", "--json", data_dir=data_dir
    )
    report = json.loads(cli.stdout)

    def strip(entries: list[dict]) -> list[dict]:
        return sorted(
            ({k: v for k, v in e.items() if k != "image"} for e in entries), key=lambda e: e["file"]
        )

    for key in ("accepted", "duplicates", "rejected"):
        assert strip(detail[key]) == strip(report[key]), key


def test_upload_in_batches_then_submit(client, site, default_worker, tmp_path):
    root = tmp_path / "export"
    first, second = make_dicom(root / "1.dcm"), make_dicom(root / "2.dcm")
    created = client.post(
        f"/api/sites/{site.slug}/uploads/",
        {**_files([first], root), "finish": "false"},
        format="multipart",
    ).json()
    assert created["status"] == "receiving"
    added = client.post(
        f"/api/uploads/{created['id']}/files/", _files([second], root), format="multipart"
    )
    assert added.status_code == 200
    assert added.json()["total_files"] == 2
    assert client.post(f"/api/uploads/{created['id']}/submit/").status_code == 202

    assert client.post(f"/api/uploads/{created['id']}/submit/").status_code == 409
    late = client.post(
        f"/api/uploads/{created['id']}/files/", _files([first], root), format="multipart"
    )
    assert late.status_code == 409
    detail = _wait_done(client, created["id"])
    assert sorted(e["file"] for e in detail["accepted"]) == ["1.dcm", "2.dcm"]


def test_api_needs_a_login_and_names_bad_requests(site, tmp_path):
    anonymous = APIClient()
    path = make_dicom(tmp_path / "a.dcm")
    assert anonymous.post(
        f"/api/sites/{site.slug}/uploads/", _files([path], tmp_path)
    ).status_code in (401, 403)
    assert anonymous.get("/api/uploads/1/").status_code in (401, 403)
    assert Upload.objects.count() == 0


def test_api_rejects_unknown_site_and_empty_upload(client, site):
    assert client.post("/api/sites/nowhere/uploads/", {}, format="multipart").status_code == 404
    response = client.post(f"/api/sites/{site.slug}/uploads/", {}, format="multipart")
    assert response.status_code == 400
    assert "files" in response.json()


def test_openapi_schema_describes_the_upload_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/api/sites/{slug}/uploads/" in paths
    assert "/api/uploads/{upload_id}/" in paths
