"""The upload's life: staged by token outside storage, atomic changes of state, expiry of
open uploads, and no staged (identified) file left after a failure, an expiry or a success."""

import os
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.core import outbox
from portal.ingest import staging
from portal.ingest.archive import Source
from portal.ingest.models import Upload, UploadFile
from portal.ingest.services import (
    IngestError,
    processing,
    upload_create,
    upload_expire_stale,
    upload_process,
    upload_process_staged,
    upload_receive_files,
    upload_submit,
)
from portal.ingest.uploadhandler import StagedUploadedFile
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)
LATER = timedelta(hours=25)


def received(tmp_path: Path, *names: str) -> list[tuple[str, StagedUploadedFile]]:
    """Files as a request delivers them: already on disk in FILE_UPLOAD_TEMP_DIR, closed."""
    files = []
    for name in names:
        data = make_dicom(tmp_path / "src" / Path(name).name).read_bytes()
        fd, path = tempfile.mkstemp(dir=settings.FILE_UPLOAD_TEMP_DIR)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        uploaded = StagedUploadedFile(
            path=path, name=Path(name).name, size=len(data), content_type="", charset=None, extra={}
        )
        files.append((name, uploaded))
    return files


def staged(staging_dir: Path) -> list[Path]:
    return sorted(p for p in staging_dir.rglob("*") if p.is_file())


def open_upload(site, tmp_path, *names: str) -> Upload:
    upload = upload_create(site=site, source=Upload.Source.API)
    return upload_receive_files(upload=upload, files=received(tmp_path, *names))


def test_staging_folder_is_named_by_a_random_token_outside_storage(
    site, tmp_path, data_dir, staging_dir, settings
):
    settings.STAGING_DIR = tmp_path / "elsewhere" / "staging"
    upload = open_upload(site, tmp_path, "a.dcm", "sub/b.dcm")

    folder = settings.STAGING_DIR / upload.uuid.hex
    assert sorted(p.name for p in folder.iterdir()) == [
        "0000001.dcm",
        "0000002.dcm",
        "batch-0000001.jsonl",
    ]
    assert str(upload.pk) not in {p.name for p in settings.STAGING_DIR.iterdir()}
    assert not (data_dir / "staging").exists()
    assert (upload.received_files, upload.total_files) == (2, 2)


def test_files_after_submit_are_refused_and_the_submitted_files_stay(
    site, tmp_path, staging_dir, monkeypatch
):
    upload = open_upload(site, tmp_path, "a.dcm")
    queued = []
    monkeypatch.setattr(outbox, "send", lambda name, **kwargs: queued.append(name))
    first = upload_submit(upload=upload)
    again = upload_submit(upload=upload)

    assert (first.status, again.status) == ("submitted", "submitted")
    assert len(queued) == 2  # a second submit sends again (a broker outage may have lost one)
    with pytest.raises(IngestError, match="takes no more files"):
        upload_receive_files(upload=upload, files=received(tmp_path, "late.dcm"))
    upload.refresh_from_db()
    assert upload.received_files == 1
    assert [p.name for p in staged(staging_dir)] == ["0000001.dcm", "batch-0000001.jsonl"]


def test_processing_a_staged_upload_sweeps_its_folder(site, tmp_path, staging_dir):
    upload = upload_submit(upload=open_upload(site, tmp_path, "a.dcm", "b.dcm"))
    done = upload_process_staged(upload_id=upload.pk)
    assert (done.status, done.accepted_count) == ("done", 2)
    assert staged(staging_dir) == []
    assert upload_process_staged(upload_id=upload.pk).status == "done"  # a redelivery: no-op


def test_open_upload_expires_with_its_files_and_refuses_more(site, tmp_path, staging_dir):
    upload = open_upload(site, tmp_path, "a.dcm")
    assert upload_expire_stale(now=timezone.now() + timedelta(hours=23)) == 0

    assert upload_expire_stale(now=timezone.now() + LATER) == 1

    upload.refresh_from_db()
    assert upload.status == "expired"
    assert "without a submit" in upload.failure_reason
    assert staged(staging_dir) == []
    with pytest.raises(IngestError, match="expired"):
        upload_receive_files(upload=upload, files=received(tmp_path, "b.dcm"))
    with pytest.raises(IngestError, match="expired"):
        upload_submit(upload=upload)


def test_a_new_batch_keeps_an_open_upload_alive(site, tmp_path, settings):
    settings.INGEST = {**settings.INGEST, "UPLOAD_EXPIRY_HOURS": 1}
    upload = open_upload(site, tmp_path, "a.dcm")
    Upload.objects.filter(pk=upload.pk).update(created_at=timezone.now() - timedelta(hours=2))
    upload_receive_files(upload=upload, files=received(tmp_path, "b.dcm"))
    assert upload_expire_stale() == 0
    upload.refresh_from_db()
    assert upload.status == "receiving"


def test_expiry_fails_a_submitted_upload_whose_processing_never_started(
    site, tmp_path, staging_dir
):
    upload = upload_submit(upload=open_upload(site, tmp_path, "a.dcm"))
    assert upload_expire_stale(now=timezone.now() + LATER) == 1
    upload.refresh_from_db()
    assert (upload.status, staged(staging_dir)) == ("failed", [])
    assert upload_process_staged(upload_id=upload.pk).status == "failed"  # a late message


def test_expiry_sweeps_orphaned_folders_and_keeps_open_ones(site, tmp_path, staging_dir):
    upload = open_upload(site, tmp_path, "a.dcm")
    orphan = staging_dir / "0123456789abcdef"
    orphan.mkdir()
    (orphan / "0000001.dcm").write_bytes(b"identified")
    old = (timezone.now() - LATER).timestamp()
    for path in (orphan, orphan / "0000001.dcm", staging_dir / upload.uuid.hex):
        os.utime(path, (old, old))

    upload_expire_stale(now=timezone.now() + timedelta(hours=1))

    assert not orphan.exists()
    assert (staging_dir / upload.uuid.hex / "0000001.dcm").exists()


def test_a_failure_in_the_middle_fails_the_upload_and_sweeps_its_files(
    site, tmp_path, data_dir, staging_dir, monkeypatch
):
    upload = upload_submit(upload=open_upload(site, tmp_path, "a.dcm", "b.dcm", "c.dcm"))
    store = processing._store
    calls = []

    def disk_full_on_second(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", "/srv/staging/Jane_Doe.dcm")
        return store(**kwargs)

    monkeypatch.setattr(processing, "_store", disk_full_on_second)
    with pytest.raises(OSError, match="No space"):
        upload_process_staged(upload_id=upload.pk)

    upload.refresh_from_db()
    assert (upload.status, upload.failure_reason) == ("failed", "ingest stopped: OSError")
    assert (upload.processed_files, upload.accepted_count) == (1, 1)  # counted from the rows
    assert staged(staging_dir) == []
    assert not list((data_dir / "tmp").iterdir())


def test_missing_staged_files_fail_the_upload_with_a_reason(site, tmp_path, staging_dir):
    upload = upload_submit(upload=open_upload(site, tmp_path, "a.dcm", "b.dcm"))
    (staging_dir / upload.uuid.hex / "0000002.dcm").unlink()
    failed = upload_process_staged(upload_id=upload.pk)
    assert failed.status == "failed"
    assert failed.failure_reason == (
        "the staged files cannot be read: 1 of 2 staged files are missing"
    )
    assert staged(staging_dir) == []


def test_cli_archive_entries_are_extracted_in_staging_and_swept(site, tmp_path, staging_dir):
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x/a.dcm", make_dicom(tmp_path / "a.dcm").read_bytes())
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI), sources=[Source.given(archive)]
    )
    assert upload.accepted_count == 1
    line = UploadFile.objects.get()
    assert (line.index, line.entry, line.label, line.name) == (1, 1, "#1/1", "")
    assert staged(staging_dir) == []


def test_counters_are_written_once_per_batch_not_per_file(site, tmp_path, monkeypatch):
    def upload_updates(files: int) -> int:
        folder = tmp_path / f"in-{files}"
        for i in range(files):
            make_dicom(folder / f"{i}.dcm", modality="CT" if i % 3 == 0 else "DX")
        upload = upload_create(site=site, source=Upload.Source.CLI)
        with CaptureQueriesContext(connection) as queries:
            upload = upload_process(upload=upload, sources=[Source.given(folder)])
        assert upload.processed_files == files
        assert (
            upload.rejected_count
            == UploadFile.objects.filter(upload=upload, outcome="rejected").count()
        )
        return sum(q["sql"].startswith('UPDATE "ingest_upload"') for q in queries.captured_queries)

    monkeypatch.setattr(processing, "COUNTER_BATCH", 4)
    assert upload_updates(3) == upload_updates(3)
    # 9 files more: three batches of 4 in all, so three more counter updates, not nine.
    assert upload_updates(12) == upload_updates(3) + 3


def test_staged_files_are_renamed_into_place_never_opened(site, tmp_path, monkeypatch):
    files = received(tmp_path, "a.dcm")
    _, uploaded = files[0]
    source = Path(uploaded.temporary_file_path())
    opened = []
    monkeypatch.setattr(type(uploaded), "chunks", lambda *a, **k: opened.append(1) or iter(()))
    upload = upload_receive_files(upload=upload_create(site=site, source="api"), files=files)
    assert not source.exists()
    assert (staging.folder(upload.uuid.hex) / "0000001.dcm").stat().st_size > 0
    assert opened == []
