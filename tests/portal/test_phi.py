"""A patient's name planted in folder and file names (as PACS exports write them) is found
nowhere afterwards: not in any table, any file under the data folder or staging, the logs or
the API's answers. Through the REST API (in batches, a ZIP among them, one upload left open
to expire) and through the CLI."""

import logging
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.services import upload_expire_stale
from tests.conftest import manage, wait_for
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)
PLANTED = ("DOE^JANE", "Jane_Doe_MRN12345", "MRN12345")


@pytest.fixture(autouse=True)
def staging(settings, data_dir: Path) -> Path:
    """Staging in the test's data folder, where the test's Celery worker looks for it too."""
    settings.STAGING_DIR = data_dir / "staging"
    return settings.STAGING_DIR


def _export(root: Path) -> list[Path]:
    """A PACS-style export: a folder named after the patient, files named after the patient
    and the record number, one of them rejected, and a ZIP holding more of the same."""
    folder = root / "DOE^JANE"
    good = make_dicom(folder / "Jane_Doe_MRN12345.dcm")
    ct = make_dicom(folder / "Jane_Doe_MRN12345_CT.dcm", modality="CT")
    archive = folder / "DOE^JANE_Jane_Doe_MRN12345.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        inner = make_dicom(root.parent / "inner" / "x.dcm", sex="M").read_bytes()
        zf.writestr("DOE^JANE/Jane_Doe_MRN12345_2.dcm", inner)
        zf.writestr("DOE^JANE/Jane_Doe_MRN12345_bad.dcm", b"not dicom at all" * 20)
    return [good, ct, archive]


def _post(client: APIClient, url: str, paths: list[Path], root: Path, **extra) -> dict:
    body = {
        "files": [SimpleUploadedFile(p.name, p.read_bytes()) for p in paths],
        "paths": [p.relative_to(root).as_posix() for p in paths],
        **extra,
    }
    response = client.post(url, body, format="multipart")
    assert response.status_code in (200, 201), response.content
    return response


def _everything_in_the_database() -> str:
    return "\n".join(
        repr(row) for model in apps.get_models() for row in model.objects.all().values()
    )


def _every_file(*roots: Path) -> list[tuple[Path, bytes]]:
    files = []
    for root in roots:
        for path in root.rglob("*"):
            files.append((path, path.read_bytes() if path.is_file() else b""))
    return files


def test_a_patient_name_in_file_and_folder_names_is_kept_nowhere(
    site,
    admin_user,
    default_worker,
    tmp_path,
    data_dir,
    staging,
    caplog,
):
    caplog.set_level(logging.DEBUG)
    client = APIClient()
    client.force_authenticate(admin_user)
    answers: list[bytes] = []
    root = tmp_path / "export"
    good, ct, archive = _export(root)

    # REST: two batches, a submit, then the status, the report pages and the list.
    created = _post(
        client, f"/api/sites/{site.slug}/uploads/", [good], root, finish="false", source="web"
    )
    upload_id = created.json()["id"]
    added = _post(client, f"/api/uploads/{upload_id}/files/", [ct, archive], root)
    submitted = client.post(f"/api/uploads/{upload_id}/submit/")
    answers += [created.content, added.content, submitted.content]

    def finished() -> bool:
        return client.get(f"/api/uploads/{upload_id}/").json()["status"] == "done"

    wait_for(finished, timeout_s=90, what=f"upload {upload_id}")
    page = client.get(f"/api/uploads/{upload_id}/files/", {"limit": 2})
    answers.append(page.content)
    while page.json()["next"]:
        page = client.get(page.json()["next"])
        answers.append(page.content)
    answers += [
        client.get(f"/api/uploads/{upload_id}/").content,
        client.get("/api/uploads/").content,
    ]
    client.force_login(admin_user)
    answers += [client.get("/uploads/").content, client.get(f"/uploads/{upload_id}/").content]

    # An upload left open expires with its staged files.
    left_open = _post(
        client, f"/api/sites/{site.slug}/uploads/", [good, archive], root, finish="false"
    )
    answers.append(left_open.content)
    assert upload_expire_stale(now=timezone.now() + timedelta(hours=25)) == 1
    answers.append(client.get(f"/api/uploads/{left_open.json()['id']}/").content)

    # The CLI, from a folder with the same names.
    cli = manage("ingest", str(root), "--site", "cli", "--create-site", "--json", data_dir=data_dir)
    assert cli.returncode == 1, cli.stderr  # the CT file and the bad ZIP entry are rejected

    # What happened is there, by position...
    lines = UploadFile.objects.filter(upload_id=upload_id)
    assert sorted((f.label, f.outcome) for f in lines) == [
        ("#1", "accepted"),
        ("#2", "rejected"),
        ("#3/1", "accepted"),
        ("#3/2", "rejected"),
    ]
    assert Image.objects.count() == 4  # two per site
    assert Upload.objects.filter(status="expired").count() == 1
    assert all(len(f.name_hash) == 64 and f.name == "" for f in UploadFile.objects.all())

    # ... and the names are nowhere.
    database = _everything_in_the_database()
    files = _every_file(data_dir, staging)
    assert any(p.name.startswith("worker-") for p, _ in files)  # the worker's log is read too
    for planted in PLANTED:
        assert planted not in database, planted
        for path, content in files:
            assert planted not in str(path), path
            assert planted.encode() not in content, path
        assert planted not in caplog.text, planted
        assert planted not in cli.stderr, planted
        for answer in answers:
            assert planted.encode() not in answer, answer[:300]
    assert not [p for p, _ in files if p.is_relative_to(staging) and p.is_file()]
