"""The same film twice in a site is stored once: the same instance, or the same pixels under
new UIDs (a re-export). The duplicate's report line names the image it duplicates."""

import threading
from pathlib import Path

import pydicom
import pytest
from django.db import connection, transaction
from pydicom.uid import generate_uid

from portal.ingest.models import Image, Site, UploadFile
from portal.ingest.services import site_create
from tests.dicom_files import make_dicom
from tests.portal.ingest.test_services import ingest, stored_files

pytestmark = pytest.mark.django_db(transaction=True)


def _reexport(src: Path, dst: Path) -> Path:
    """The same film with new UIDs and a new name, as a PACS re-export gives it."""
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "NEWMRN1"
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst)
    return dst


def test_a_reexport_with_new_uids_is_a_duplicate_naming_the_stored_image(site, tmp_path, data_dir):
    original = make_dicom(tmp_path / "a.dcm")
    ingest(site, original)
    stored = Image.objects.get()

    report = ingest(site, _reexport(original, tmp_path / "again" / "a-reexport.dcm"))

    assert report["accepted"] == []
    [line] = report["duplicates"]
    assert line["file"] == "a-reexport.dcm"
    assert line["image"] == stored.pk
    assert line["reason"] == f"same pixels as image {stored.uuid}"
    assert str(tmp_path) not in line["reason"]
    assert Image.objects.count() == 1
    assert len(stored_files(data_dir)) == 1
    assert not list((data_dir / "tmp").iterdir())


def test_the_second_copy_within_one_upload_is_the_duplicate(site, tmp_path):
    first = make_dicom(tmp_path / "in" / "1.dcm")
    _reexport(first, tmp_path / "in" / "2.dcm")
    make_dicom(tmp_path / "in" / "3.dcm")

    report = ingest(site, tmp_path / "in")

    assert [e["file"] for e in report["accepted"]] == ["1.dcm", "3.dcm"]
    [line] = report["duplicates"]
    assert line["file"] == "2.dcm"
    assert line["image"] == report["accepted"][0]["image"]
    row = UploadFile.objects.get(outcome=UploadFile.Outcome.DUPLICATE)
    assert row.image_id == report["accepted"][0]["image"]


def test_same_pixels_in_another_site_are_not_a_duplicate(tmp_path):
    original = make_dicom(tmp_path / "a.dcm")
    ingest(site_create(slug="north"), original)
    report = ingest(site_create(slug="south"), _reexport(original, tmp_path / "b.dcm"))
    assert len(report["accepted"]) == 1


def test_the_same_instance_again_names_the_stored_image(site, tmp_path):
    original = make_dicom(tmp_path / "a.dcm")
    ingest(site, original)
    report = ingest(site, original)
    [line] = report["duplicates"]
    assert line["reason"] == f"same instance (SOPInstanceUID) as image {Image.objects.get().uuid}"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks: SQLite serialises every write anyway"
)
def test_an_upload_waits_for_another_storing_into_the_same_site(site, tmp_path):
    """While one transaction holds the site's lock (as storing a film does), storing the same
    pixels elsewhere waits for it and then finds the film: the film is stored once."""
    original = make_dicom(tmp_path / "a.dcm")
    copy = _reexport(original, tmp_path / "b.dcm")
    locked, release = threading.Event(), threading.Event()

    def hold_the_site() -> None:
        with transaction.atomic():
            Site.objects.select_for_update(no_key=True).get(pk=site.pk)
            locked.set()
            release.wait(10)
            ingest(site, original)  # in the lock holder's transaction: stored, then commit
        connection.close()

    holder = threading.Thread(target=hold_the_site)
    holder.start()
    assert locked.wait(10)
    threading.Timer(1.0, release.set).start()
    report = ingest(site, copy)  # blocks on the lock until the holder commits
    holder.join(10)

    assert report["accepted"] == []
    assert len(report["duplicates"]) == 1
    assert Image.objects.count() == 1
