import stat
import zipfile
from pathlib import Path

import pytest

from portal.ingest.models import Image
from tests.dicom_files import make_dicom
from tests.portal.ingest.test_services import ingest, stored_files

pytestmark = pytest.mark.django_db(transaction=True)


def _zip(path: Path, entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _dicom_bytes(tmp_path: Path, name: str, **kwargs) -> bytes:
    return make_dicom(tmp_path / "src" / name, **kwargs).read_bytes()


def test_zip_entries_are_ingested_with_names_relative_to_the_archive(site, tmp_path):
    archive = _zip(
        tmp_path / "batch.zip",
        {
            "study/a.dcm": _dicom_bytes(tmp_path, "a.dcm"),
            "study/b.dcm": _dicom_bytes(tmp_path, "b.dcm"),
            "__MACOSX/study/._a.dcm": b"resource fork",
        },
    )
    report = ingest(site, archive)
    assert sorted(e["file"] for e in report["accepted"]) == ["study/a.dcm", "study/b.dcm"]
    assert report["rejected"] == []


def test_zip_inside_a_folder_is_named_by_its_path(site, tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    _zip(folder / "batch.zip", {"a.dcm": _dicom_bytes(tmp_path, "a.dcm")})
    report = ingest(site, folder)
    assert [e["file"] for e in report["accepted"]] == ["batch.zip/a.dcm"]


def test_traversal_absolute_symlink_and_nested_entries_are_rejected_and_written_nowhere(
    site, tmp_path, data_dir, monkeypatch
):
    work = tmp_path / "work"
    work.mkdir()
    inner = _zip(tmp_path / "inner.zip", {"x.dcm": _dicom_bytes(tmp_path, "x.dcm")})
    archive = _zip(
        tmp_path / "evil.zip",
        {
            "../escaped.dcm": _dicom_bytes(tmp_path, "e1.dcm"),
            "/tmp/absolute.dcm": _dicom_bytes(tmp_path, "e2.dcm"),
            "ok/../../up.dcm": _dicom_bytes(tmp_path, "e3.dcm"),
            "nested.zip": inner.read_bytes(),
            "disguised.dcm": inner.read_bytes(),
            "good.dcm": _dicom_bytes(tmp_path, "good.dcm"),
        },
        links={"link.dcm": "/etc/passwd"},
    )
    before = set(Path("/tmp").iterdir())
    monkeypatch.chdir(work)
    report = ingest(site, archive)

    reasons = {e["file"]: e["reason"] for e in report["rejected"]}
    assert set(reasons) == {
        "../escaped.dcm",
        "/tmp/absolute.dcm",
        "ok/../../up.dcm",
        "nested.zip",
        "disguised.dcm",
        "link.dcm",
    }
    assert "unsafe path" in reasons["../escaped.dcm"]
    assert "unsafe path" in reasons["ok/../../up.dcm"]
    assert "unsafe path" in reasons["/tmp/absolute.dcm"]
    assert "nested archive" in reasons["nested.zip"]
    assert "nested archive" in reasons["disguised.dcm"]
    assert "symbolic link" in reasons["link.dcm"]
    assert [e["file"] for e in report["accepted"]] == ["good.dcm"]
    assert not list(work.iterdir())
    assert not (tmp_path / "escaped.dcm").exists()
    assert set(Path("/tmp").iterdir()) - before == set()
    assert not list((data_dir / "tmp").iterdir())


def test_zip_bomb_by_ratio_is_rejected_whole(site, tmp_path, data_dir):
    archive = _zip(
        tmp_path / "bomb.zip",
        {
            "a.dcm": _dicom_bytes(tmp_path, "a.dcm"),
            "zeros.dcm": b"\0" * (50 * 1024 * 1024),
        },
    )
    report = ingest(site, archive)
    assert report["accepted"] == []
    assert len(report["rejected"]) == 1
    assert "compression ratio" in report["rejected"][0]["reason"]
    assert Image.objects.count() == 0
    assert stored_files(data_dir) == []


def test_zip_over_the_size_limit_is_rejected_whole(site, tmp_path, settings):
    settings.INGEST = {**settings.INGEST, "ZIP_MAX_UNCOMPRESSED_BYTES": 10_000}
    archive = _zip(tmp_path / "big.zip", {"a.dcm": _dicom_bytes(tmp_path, "a.dcm")})
    report = ingest(site, archive)
    assert report["accepted"] == []
    assert "would expand to" in report["rejected"][0]["reason"]


def test_corrupt_zip_is_rejected_and_the_rest_of_the_folder_is_kept(site, tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    good = _zip(tmp_path / "good.zip", {"a.dcm": _dicom_bytes(tmp_path, "a.dcm")}).read_bytes()
    (folder / "broken.zip").write_bytes(good[: len(good) // 2])
    make_dicom(folder / "b.dcm")
    report = ingest(site, folder)
    assert report["rejected"] == [{"file": "broken.zip", "reason": "not a readable ZIP archive"}]
    assert [e["file"] for e in report["accepted"]] == ["b.dcm"]
