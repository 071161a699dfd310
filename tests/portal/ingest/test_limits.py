"""Cheap checks first and sizes bounded: what is plainly not an image costs a few bytes of
reading, and no file or request larger than the limits is stored."""

import io
import os
import resource
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.http.multipartparser import MultiPartParser
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from pydicom.dataset import Dataset

from portal.ingest.dicom import (
    PIXEL_DATA,
    Limits,
    Rejected,
    check_radiograph,
    plausible_bare_data_set,
    read_dataset,
    read_dataset_from,
)
from portal.ingest.uploadhandler import RejectedUpload, StagedUploadedFile, StagingUploadHandler
from tests.dicom_files import make_dicom
from tests.portal.ingest.test_services import ingest, stored_files

GIB = 1024**3


class CountingReader(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path):
        self._fh = path.open("rb")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()
        super().close()


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def test_a_gigabyte_of_zeros_is_rejected_after_reading_its_first_132_bytes(tmp_path):
    zeros = _sparse(tmp_path / "z.dcm", GIB)
    reader = CountingReader(zeros)
    with pytest.raises(Rejected, match="not a DICOM file"):
        read_dataset_from(reader, size=GIB)
    reader.close()
    assert reader.bytes_read <= 132
    with pytest.raises(Rejected, match="not a DICOM file"):
        read_dataset(zeros)


@pytest.mark.parametrize("encoding", ["implicit", "explicit", "big-endian"])
def test_bare_data_sets_in_each_uncompressed_encoding_pass_the_first_bytes_check(
    encoding, tmp_path
):
    path = make_dicom(tmp_path / "bare.dcm", preamble=False, bare_encoding=encoding)
    assert plausible_bare_data_set(path.read_bytes()[:132], path.stat().st_size)


@pytest.mark.parametrize(
    "head",
    [
        b"\0" * 132,
        b"\xff\xd8\xff\xe0\0\x10JFIF" + b"\0" * 122,  # a JPEG photograph
        b"\x89PNG\r\n\x1a\n" + b"\0" * 124,
        b'{\n    "00080005": {"vr": "CS"}' + b" " * 100,  # DICOM JSON, not DICOM
        b"patient list, not an image\n" * 5,
        b"PK\x03\x04" + b"\0" * 128,
    ],
    ids=["zeros", "jpeg", "png", "json", "text", "zip"],
)
def test_files_that_cannot_start_a_data_set_fail_the_first_bytes_check(head):
    assert not plausible_bare_data_set(head, 10 * len(head))


def test_a_header_claiming_huge_geometry_is_rejected_before_its_pixel_data_is_read(tmp_path):
    """8192 x 8192 x 16 bits declared, 1 GiB of pixel data after it: the header alone says
    it cannot be one frame, and the gigabyte is never read."""
    small = make_dicom(tmp_path / "small.dcm", with_pixels=False, rows=8192, cols=8192)
    header = small.read_bytes()
    element = b"\xe0\x7f\x10\x00OW\0\0" + GIB.to_bytes(4, "little")
    path = _sparse(tmp_path / "huge.dcm", len(header) + len(element) + GIB, header + element)

    ds = read_dataset(path)
    with pytest.raises(Rejected, match=r"pixel data length \(1073741824 bytes\) does not match"):
        check_radiograph(ds, Limits())
    assert ds.get_item(PIXEL_DATA, keep_deferred=True).value is None  # never read


def test_files_over_the_size_limit_are_rejected_in_folders_and_zip_entries(
    site, tmp_path, data_dir, settings
):
    settings.PORTAL_MAX_FILE_BYTES = 50_000
    folder = tmp_path / "in"
    make_dicom(folder / "small.dcm")
    make_dicom(folder / "big.dcm", rows=256, cols=256)  # 131 kB
    with zipfile.ZipFile(folder / "batch.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("inner-small.dcm", make_dicom(tmp_path / "s.dcm").read_bytes())
        zf.writestr(
            "inner-big.dcm", make_dicom(tmp_path / "b.dcm", rows=256, cols=256).read_bytes()
        )

    report = ingest(site, folder)

    assert sorted(e["file"] for e in report["accepted"]) == [
        "batch.zip/inner-small.dcm",
        "small.dcm",
    ]
    rejected = {e["file"]: e["reason"] for e in report["rejected"]}
    assert set(rejected) == {"big.dcm", "batch.zip/inner-big.dcm"}
    for reason in rejected.values():
        assert "over the limit of 50000 bytes per file (PORTAL_MAX_FILE_BYTES)" in reason
    assert len(stored_files(data_dir)) == 2


def _parse(settings, tmp_path: Path, files: dict[str, bytes]) -> tuple[dict, list[Path]]:
    """Run Django's multipart parser with the portal's upload handler over a real body."""
    incoming = tmp_path / "incoming"
    incoming.mkdir(exist_ok=True)
    settings.FILE_UPLOAD_TEMP_DIR = str(incoming)
    body = encode_multipart(
        BOUNDARY, {"files": [_named(name, data) for name, data in files.items()]}
    )
    meta = {"CONTENT_TYPE": MULTIPART_CONTENT, "CONTENT_LENGTH": str(len(body))}
    parser = MultiPartParser(meta, io.BytesIO(body), [StagingUploadHandler()])
    _post, received = parser.parse()
    return {f.name: f for f in received.getlist("files")}, sorted(incoming.iterdir())


def _named(name: str, data: bytes) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def test_upload_handler_stages_each_file_closed_and_drops_files_over_the_limit(settings, tmp_path):
    settings.PORTAL_MAX_FILE_BYTES = 3_000_000
    dicom = make_dicom(tmp_path / "a.dcm").read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inside.dcm", b"\0" * 4_000_000)

    received, on_disk = _parse(
        settings,
        tmp_path,
        {"a.dcm": dicom, "big.dcm": b"\0" * 4_000_000, "batch.zip": archive.getvalue()},
    )

    staged, big, batch = received["a.dcm"], received["big.dcm"], received["batch.zip"]
    assert isinstance(staged, StagedUploadedFile)
    assert staged.closed  # no descriptor held
    assert staged.size == len(dicom)
    assert Path(staged.temporary_file_path()).read_bytes() == dicom
    assert isinstance(big, RejectedUpload)
    assert big.rejection == (
        "file too large: 4000000 bytes, over the limit of 3000000 bytes per file "
        "(PORTAL_MAX_FILE_BYTES)"
    )
    assert isinstance(batch, StagedUploadedFile)  # archives: their entries are checked
    assert on_disk == sorted(
        Path(f.temporary_file_path()) for f in (staged, batch)
    )  # nothing of the big file
    for uploaded in received.values():
        uploaded.close()  # the end of the request: what nobody moved away goes
    assert not list((tmp_path / "incoming").iterdir())


@pytest.mark.django_db
def test_request_over_the_limit_answers_413_with_a_json_error(site, admin_user, settings, tmp_path):
    from rest_framework.test import APIClient

    settings.PORTAL_MAX_REQUEST_BYTES = 100_000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    client = APIClient()
    client.force_authenticate(admin_user)
    files = [_named(f"{i}.dcm", make_dicom(tmp_path / f"{i}.dcm").read_bytes()) for i in range(8)]

    response = client.post(f"/api/sites/{site.slug}/uploads/", {"files": files}, format="multipart")

    assert response.status_code == 413
    assert "over the limit of 100000 bytes per request" in response.json()["detail"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("upload-")]


def test_a_deferred_pixel_value_is_read_when_used(tmp_path):
    path = make_dicom(tmp_path / "a.dcm", rows=256, cols=256)
    ds = read_dataset(path)
    assert ds.get_item(PIXEL_DATA, keep_deferred=True).value is None
    assert ds.PixelData == pydicom.dcmread(path).PixelData
    assert isinstance(ds, Dataset)


@pytest.mark.django_db(transaction=True)
def test_a_request_with_more_files_than_free_descriptors_is_received(site, admin_user, settings):
    """Django's own handler holds each received file open until the request ends; this one
    closes each as it ends, so 600 files pass where only 200 more descriptors may be open."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(admin_user)
    files = [_named(f"{i:04d}.dcm", b"tiny file %d" % i) for i in range(600)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 200, hard))
    try:
        response = client.post(
            f"/api/sites/{site.slug}/uploads/",
            {"files": files, "finish": "false"},
            format="multipart",
        )
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert response.status_code == 201, response.content
    assert response.json()["total_files"] == 600
    assert not list(Path(settings.FILE_UPLOAD_TEMP_DIR).glob("upload-*"))  # all staged
