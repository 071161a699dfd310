"""Every API error answers JSON (`{"detail"}`), those Django answers itself included (a body too
large, too many files, an exception no view caught); pages keep their HTML error pages."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from portal.core.views import SERVER_ERROR, TOO_LARGE
from portal.ingest import selectors
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db
SECRET = "Jane Doe, born 2015-03-10"  # what an exception's message might carry


@pytest.fixture
def failing_sites(monkeypatch) -> None:
    def fail(**kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(selectors, "site_list", fail)


def test_an_exception_in_an_api_view_answers_json_500_without_its_message(
    admin_user, failing_sites
):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(admin_user)
    response = client.get("/api/sites/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": SERVER_ERROR}
    assert "Jane" not in response.content.decode()


def test_an_exception_in_a_page_keeps_the_html_error_page(admin_user, failing_sites):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    response = client.get("/uploads/new/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert "Jane" not in response.content.decode()


def test_a_form_body_over_the_memory_limit_answers_json_413(admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post(
        "/api/reports/",
        "validation_set=" + "x" * 2000,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response.json() == {"detail": TOO_LARGE}


def test_too_many_files_in_one_request_answers_json_400(admin_user, site, settings, tmp_path):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    data = make_dicom(tmp_path / "a.dcm").read_bytes()
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post(
        f"/api/sites/{site.slug}/uploads/",
        {"files": [SimpleUploadedFile(f"{n}.dcm", data) for n in range(3)]},
        format="multipart",
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}
