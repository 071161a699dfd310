"""The per-file size limit holds for every file: beginning with the ZIP signature exempts
nothing; only a real archive may be larger than a file, its entries limited one by one."""

import io
import zipfile
from pathlib import Path

import pytest

from portal.ingest.uploadhandler import RejectedUpload, StagedUploadedFile
from tests.dicom_files import make_dicom
from tests.portal.ingest.test_limits import _named, _parse
from tests.portal.ingest.test_services import ingest, stored_files

LIMIT = 3_000_000
TOO_LARGE = f"over the limit of {LIMIT} bytes per file (PORTAL_MAX_FILE_BYTES)"


def _signature_file(size: int) -> bytes:
    """Not an archive: the ZIP signature, then bytes (no central directory)."""
    return b"PK\x03\x04" + b"\x01" * (size - 4)


def _dicom_with_zip_preamble(tmp_path: Path, size: int) -> bytes:
    """A DICOM file whose preamble begins with the ZIP signature, padded past `size`."""
    data = bytearray(make_dicom(tmp_path / "film.dcm").read_bytes())
    data[:4] = b"PK\x03\x04"
    return bytes(data) + b"\0" * (size - len(data))


def test_a_file_beginning_with_the_zip_signature_is_held_to_the_file_limit(settings, tmp_path):
    settings.PORTAL_MAX_FILE_BYTES = LIMIT
    fake = _signature_file(LIMIT + 1_000_000)
    polyglot = _dicom_with_zip_preamble(tmp_path, LIMIT + 1_000_000)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:  # stored: as large as what it holds
        zf.writestr("inside.dcm", b"\1" * (LIMIT + 500_000))
    assert archive.tell() > LIMIT

    received, on_disk = _parse(
        settings,
        tmp_path,
        {"fake.zip": fake, "film.dcm": polyglot, "real.zip": archive.getvalue()},
    )

    for name in ("fake.zip", "film.dcm"):
        assert isinstance(received[name], RejectedUpload), name
        assert received[name].rejection.startswith(f"file too large: {LIMIT + 1_000_000} bytes")
        assert TOO_LARGE in received[name].rejection
    real = received["real.zip"]
    assert isinstance(real, StagedUploadedFile)  # a real archive: its entries are checked
    assert on_disk == [Path(real.temporary_file_path())]  # nothing of the other two
    for uploaded in received.values():
        uploaded.close()


@pytest.mark.django_db
def test_ingest_refuses_a_signature_file_over_the_limit_as_too_large(
    site, settings, tmp_path, data_dir
):
    settings.PORTAL_MAX_FILE_BYTES = LIMIT
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "fake.zip").write_bytes(_signature_file(LIMIT + 1))
    (folder / "film.dcm").write_bytes(_dicom_with_zip_preamble(tmp_path, LIMIT + 1))
    with zipfile.ZipFile(folder / "real.zip", "w") as zf:
        zf.writestr("small.dcm", make_dicom(tmp_path / "s.dcm").read_bytes())
        zf.writestr("padding.dcm", b"\1" * (LIMIT + 1))  # over the limit: refused alone

    report = ingest(site, folder)

    rejected = {e["file"]: e["reason"] for e in report["rejected"]}
    assert TOO_LARGE in rejected["fake.zip"]
    assert TOO_LARGE in rejected["film.dcm"]
    assert TOO_LARGE in rejected["real.zip/padding.dcm"]
    assert [e["file"] for e in report["accepted"]] == ["real.zip/small.dcm"]
    assert len(stored_files(data_dir)) == 1


@pytest.mark.django_db(transaction=True)
def test_an_upload_of_a_signature_file_over_the_limit_stores_nothing_of_it(
    site, admin_user, settings, tmp_path
):
    from rest_framework.test import APIClient

    settings.PORTAL_MAX_FILE_BYTES = LIMIT
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post(
        f"/api/sites/{site.slug}/uploads/",
        {"files": [_named("fake.zip", _signature_file(LIMIT + 1))], "finish": "false"},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()["total_files"] == 1
    staged = [p for p in Path(settings.STAGING_DIR).rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 10_000 for p in staged), staged  # manifests only
