"""Recording a parallel upload: runs of files in one transaction, and each duplicate still
named with its reason when a run meets one."""

import shutil

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.selectors import upload_report
from portal.ingest.services import ingest_workers_start, upload_create, upload_process
from portal.ingest.services.processing import RECORD_LEAST
from tests.dicom_files import make_dicom

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_parallel_upload_records_runs_of_files_and_names_each_duplicate(
    site, tmp_path, data_dir, settings
):
    settings.INGEST = {**settings.INGEST, "WORKERS": 2, "PARALLEL_MIN_FILES": 1}
    ingest_workers_start()  # every file to a worker: outcomes come back a chunk at a time
    folder = tmp_path / "in"
    for i in range(20):
        make_dicom(folder / f"{i:02d}.dcm")
    shutil.copy(folder / "03.dcm", folder / "03z.dcm")  # the same instance again, in the upload
    before = upload_create(site=site, source=Upload.Source.CLI)
    upload_process(upload=before, sources=[Source.given(folder / "07.dcm")])  # stored before

    names: dict[str, str] = {}
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI),
        sources=[Source.given(folder)],
        on_file=lambda record, ref: names.__setitem__(record.label, ref.name),
    )

    report = upload_report(upload=upload)
    first_03 = UploadFile.objects.get(upload=upload, index=4, entry=None).image
    assert names["#4"] == "03.dcm"
    stored_07 = Image.objects.get(upload=before)
    assert {names[line["file"]]: line["reason"] for line in report["duplicates"]} == {
        "03z.dcm": f"same instance (SOPInstanceUID) as image {first_03.uuid}",
        "07.dcm": f"same instance (SOPInstanceUID) as image {stored_07.uuid}",
    }
    assert sorted(names[line["file"]] for line in report["accepted"]) == [
        f"{i:02d}.dcm" for i in range(20) if i != 7
    ]
    assert (upload.accepted_count, upload.duplicate_count) == (19, 2)
    assert Image.objects.filter(upload=upload).count() == 19
    assert len(list((data_dir / "images" / site.slug).iterdir())) == 20  # the 19 and 07's
    assert not list((data_dir / "tmp").iterdir())


def test_a_parallel_upload_records_runs_of_at_least_record_least_files(site, tmp_path, settings):
    settings.INGEST = {**settings.INGEST, "WORKERS": 2, "PARALLEL_MIN_FILES": 1}
    ingest_workers_start()  # every file to a worker, in chunks of 8
    count = 2 * RECORD_LEAST + 6
    for i in range(count):
        make_dicom(tmp_path / "in" / f"{i:03d}.dcm")
    upload = upload_create(site=site, source=Upload.Source.CLI)
    with CaptureQueriesContext(connection) as queries:
        upload = upload_process(upload=upload, sources=[Source.given(tmp_path / "in")])
    assert upload.accepted_count == count
    # Each run waits for RECORD_LEAST files (the last aside): three runs, each one insert of
    # report lines (SQLite splits the images' insert by its limit on parameters). A run of
    # what the workers have finished when the oldest is ready would be a chunk or two.
    runs = [q for q in queries.captured_queries if 'INTO "ingest_uploadfile"' in q["sql"]]
    assert len(runs) <= 3
    assert upload.processed_files == count
