import hashlib
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.db import DataError
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from portal.ingest import prepare as prepare_module
from portal.ingest.archive import Source
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.selectors import upload_report
from portal.ingest.services import site_create, upload_create, upload_process
from tests.dicom_files import BIRTH_DATE, PHI, PRIVATE_PHI, SEQUENCE_PHI, STUDY_DATE, make_dicom

pytestmark = pytest.mark.django_db(transaction=True)
NUMBER_OF_FRAMES = Tag(0x0028, 0x0008)


def ingest(site, *paths: Path) -> dict:
    """The upload's report, each line's `file` being the name the test gave the file (which
    the portal does not keep: `upload_process` hands it to `on_file` in memory). An empty
    `warning` (every line has one) is left out, so that lines compare by what they say."""
    upload = upload_create(site=site, source=Upload.Source.CLI)
    sources = [Source.given(p) for p in paths]
    names: dict[str, str] = {}

    def on_file(record: UploadFile, ref) -> None:
        names[record.label] = ref.name

    report = upload_report(upload=upload_process(upload=upload, sources=sources, on_file=on_file))
    for group in ("accepted", "duplicates", "rejected"):
        report[group] = [
            {"file": names[line["file"]]}
            | {
                k: v
                for k, v in line.items()
                if k not in ("file", "index", "entry") and (k != "warning" or v)
            }
            for line in report[group]
        ]
    return report


def stored_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "images").rglob("*.dcm"))


def test_accepts_grayscale_radiographs_in_every_encoding(site, tmp_path, data_dir):
    src = tmp_path / "in"
    make_dicom(src / "mono2.dcm")
    make_dicom(src / "mono1.dcm", photometric="MONOCHROME1", modality="CR")
    make_dicom(src / "rle.dcm", transfer_syntax=RLELossless)
    make_dicom(src / "j2k.dcm", transfer_syntax=JPEG2000Lossless, bits_stored=16)
    make_dicom(src / "eight-bit.dcm", bits_stored=8)
    make_dicom(src / "odd-size.dcm", bits_stored=8, rows=97, cols=81)
    make_dicom(src / "rle-odd.dcm", bits_stored=8, rows=97, cols=81, transfer_syntax=RLELossless)
    make_dicom(src / "bare-dataset.dcm", preamble=False)

    report = ingest(site, src)

    assert report["rejected"] == []
    assert sorted(e["file"] for e in report["accepted"]) == [
        "bare-dataset.dcm",
        "eight-bit.dcm",
        "j2k.dcm",
        "mono1.dcm",
        "mono2.dcm",
        "odd-size.dcm",
        "rle-odd.dcm",
        "rle.dcm",
    ]
    assert len(stored_files(data_dir)) == 8
    for image in Image.objects.all():
        name = next(e["file"] for e in report["accepted"] if e["image"] == image.pk)
        original = pydicom.dcmread(src / name, force=True)
        stored = pydicom.dcmread(data_dir / image.file)
        if name == "bare-dataset.dcm":  # no header to decode it by: native 16-bit pixels
            expected = np.frombuffer(original.PixelData, np.uint16).reshape(96, 80)
        else:
            assert stored.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
            expected = original.pixel_array
        np.testing.assert_array_equal(stored.pixel_array, expected)
        assert image.sha256 == hashlib.sha256((data_dir / image.file).read_bytes()).hexdigest()


def test_pixels_survive_ingest_unchanged(site, tmp_path, data_dir):
    pixels = np.random.default_rng(7).integers(0, 4096, size=(96, 80), dtype=np.uint16)
    make_dicom(tmp_path / "rle.dcm", pixels=pixels, transfer_syntax=RLELossless)
    report = ingest(site, tmp_path / "rle.dcm")
    image = Image.objects.get(pk=report["accepted"][0]["image"])
    np.testing.assert_array_equal(pydicom.dcmread(data_dir / image.file).pixel_array, pixels)


def test_stored_bytes_database_and_logs_carry_no_phi(site, tmp_path, data_dir, caplog):
    original = make_dicom(tmp_path / "phi.dcm", extra={"PatientComments": "lives at Wallaby Way"})
    source = pydicom.dcmread(original)
    caplog.set_level(logging.DEBUG)

    report = ingest(site, original)

    assert len(report["accepted"]) == 1
    stored = stored_files(data_dir)[0].read_bytes()
    secrets = [
        *PHI.values(),
        PRIVATE_PHI,
        SEQUENCE_PHI,
        "Wallaby",
        BIRTH_DATE,
        STUDY_DATE,
        "HOSPITALPACS",
        "REQPROC99",
        "ACME PRIVATE",
        str(source.SOPInstanceUID),
        str(source.StudyInstanceUID),
        str(source.SeriesInstanceUID),
        str(source.FrameOfReferenceUID),
    ]
    database = " ".join(
        str(v)
        for model in (Image, UploadFile, Upload)
        for row in model.objects.values()
        for v in row.values()
    )
    for secret in secrets:
        assert secret.encode() not in stored, secret
        assert secret not in database, secret
        assert secret not in caplog.text, secret


def test_deidentified_file_keeps_what_the_model_needs_and_says_how_it_was_cleaned(
    site, tmp_path, data_dir
):
    make_dicom(tmp_path / "a.dcm", sex="M", extra={"ContentDate": "20200117"})
    ingest(site, tmp_path / "a.dcm")
    image = Image.objects.get()
    ds = pydicom.dcmread(data_dir / image.file)

    assert (ds.PatientSex, ds.ViewPosition, ds.Manufacturer) == ("M", "PA", "ACME Imaging")
    assert [float(v) for v in ds.PixelSpacing] == [0.15, 0.15]
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.PatientID == ds.PatientName == image.patient_pseudonym
    assert "PatientBirthDate" not in ds or ds.PatientBirthDate == ""
    assert ds.PatientAge == "058M"
    assert image.age_days == 1772
    assert {item.CodeValue for item in ds.DeidentificationMethodCodeSequence} == {
        "113100",
        "113107",
        "113108",
    }
    assert not [elem for elem in ds if elem.tag.is_private]
    # Dates move together: the interval survives, the calendar date does not.
    study, content = (pydicom.valuerep.DA(ds.StudyDate), pydicom.valuerep.DA(ds.ContentDate))
    assert ds.StudyDate != STUDY_DATE
    assert (content - study).days == 2
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == image.sop_instance_uid


def test_uids_and_pseudonyms_are_consistent_within_a_site_and_differ_across_sites(tmp_path):
    north, south = site_create(slug="north"), site_create(slug="south")
    a = make_dicom(tmp_path / "a.dcm")
    b = make_dicom(
        tmp_path / "b.dcm", extra={"StudyInstanceUID": pydicom.dcmread(a).StudyInstanceUID}
    )
    ingest(north, a, b)
    ingest(south, a)
    first, second = Image.objects.filter(site=north)
    other = Image.objects.get(site=south)
    assert first.study_instance_uid == second.study_instance_uid
    assert first.patient_pseudonym == second.patient_pseudonym
    assert first.sop_instance_uid != second.sop_instance_uid
    assert other.sop_instance_uid != first.sop_instance_uid
    assert other.patient_pseudonym != first.patient_pseudonym


def _truncated(path: Path) -> None:
    make_dicom(path, rows=256, cols=256)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _undecodable(path: Path) -> None:
    make_dicom(path, transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(path)
    frame = bytearray(ds.PixelData)
    frame[len(frame) // 2 :] = b"\x00" * (len(frame) - len(frame) // 2)
    frame[20:60] = b"\xff" * 40
    ds.PixelData = bytes(frame)
    ds.save_as(path)


def _number_of_frames_1a(path: Path) -> None:
    make_dicom(path)
    ds = pydicom.dcmread(path)
    ds[NUMBER_OF_FRAMES] = RawDataElement(NUMBER_OF_FRAMES, "IS", 2, b"1A", 0, False, True)
    ds.save_as(path)


def _two_frames_declared_as_one(path: Path) -> None:
    make_dicom(path)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData * 2
    ds.save_as(path)


def _two_encapsulated_frames_declared_as_one(path: Path) -> None:
    make_dicom(path, frames=2, transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    del ds.NumberOfFrames
    ds.save_as(path)


def _no_photometric(path: Path) -> None:
    make_dicom(path)
    ds = pydicom.dcmread(path)
    del ds.PhotometricInterpretation
    ds.save_as(path)


REJECTIONS = {
    "not-dicom.dcm": (
        lambda p: p.write_text("patient list, not an image\n" * 20),
        "not a DICOM file",
    ),
    "truncated.dcm": (_truncated, "truncated"),
    "no-pixels.dcm": (lambda p: make_dicom(p, with_pixels=False), "no pixel data"),
    "float-pixels-too.dcm": (
        lambda p: make_dicom(p, extra={"FloatPixelData": b"\0" * 16}),
        "float pixel data beside the pixel data",
    ),
    "undecodable.dcm": (_undecodable, "damaged or truncated pixel data (JPEG 2000"),
    "multiframe.dcm": (lambda p: make_dicom(p, frames=3), "multi-frame"),
    "colour.dcm": (lambda p: make_dicom(p, photometric="RGB", samples=3, bits_stored=8), "colour"),
    "ct.dcm": (lambda p: make_dicom(p, modality="CT"), "modality CT is not a radiograph"),
    "no-age.dcm": (lambda p: make_dicom(p, birth_date=None, patient_age=None), "missing age"),
    "bad-age.dcm": (lambda p: make_dicom(p, birth_date="1x", patient_age="old"), "missing age"),
    "adult.dcm": (lambda p: make_dicom(p, birth_date="19990101"), "18 years or more"),
    "unborn.dcm": (lambda p: make_dicom(p, birth_date="20200301"), "negative age"),
    "absurd.dcm": (lambda p: make_dicom(p, rows=8, cols=4000), "absurd dimensions"),
    "frames-1a.dcm": (_number_of_frames_1a, "invalid NumberOfFrames"),
    "two-frames-as-one.dcm": (
        _two_frames_declared_as_one,
        "pixel data length (30720 bytes) does not match one frame of 96x80 pixels of 16 bits",
    ),
    "rle-two-frames-as-one.dcm": (
        _two_encapsulated_frames_declared_as_one,
        "encapsulated pixel data holds 2 frames; only single-frame radiographs",
    ),
    "no-photometric.dcm": (_no_photometric, "no PhotometricInterpretation"),
    "unknown-photometric.dcm": (
        lambda p: make_dicom(p, photometric="MONOCHROME3"),
        "PhotometricInterpretation is not a defined term",
    ),
    "age-216m.dcm": (
        lambda p: make_dicom(p, birth_date=None, patient_age="216M"),
        "age 18.0 years is out of scope (18 years or more)",
    ),
    "modality-phi.dcm": (
        lambda p: make_dicom(p, modality="SMITHJOHN1990"),
        "modality (not a defined term) is not a radiograph (expected CR or DX)",
    ),
}


@pytest.mark.parametrize("name", sorted(REJECTIONS))
def test_bad_file_is_rejected_with_its_reason_and_leaves_nothing_behind(
    name, site, tmp_path, data_dir
):
    build, reason = REJECTIONS[name]
    folder = tmp_path / "upload"
    folder.mkdir()
    make_dicom(folder / "good-1.dcm")
    build(folder / name)
    make_dicom(folder / "zz-good-2.dcm")

    report = ingest(site, folder)

    assert [e["file"] for e in report["rejected"]] == [name]
    assert reason in report["rejected"][0]["reason"]
    assert sorted(e["file"] for e in report["accepted"]) == ["good-1.dcm", "zz-good-2.dcm"]
    assert Image.objects.count() == 2
    assert len(stored_files(data_dir)) == 2
    assert not list((data_dir / "tmp").iterdir())


def test_every_rejection_in_one_upload_keeps_the_good_files(site, tmp_path, data_dir):
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, (build, _reason) in REJECTIONS.items():
        build(folder / name)
    make_dicom(folder / "good.dcm")
    report = ingest(site, folder)
    upload = Upload.objects.get()
    assert len(report["rejected"]) == len(REJECTIONS)
    assert [e["file"] for e in report["accepted"]] == ["good.dcm"]
    files = len(REJECTIONS) + 1
    assert (upload.status, upload.total_files, upload.processed_files) == ("done", files, files)
    assert (upload.accepted_count, upload.rejected_count) == (1, len(REJECTIONS))


def test_reasons_describe_values_that_are_not_defined_terms_without_quoting_them(site, tmp_path):
    make_dicom(tmp_path / "in" / "a.dcm", modality="SMITHJOHN1990")
    make_dicom(tmp_path / "in" / "b.dcm", photometric="JOHN SMITH")
    make_dicom(tmp_path / "in" / "c.dcm", modality="mr")
    reasons = [e["reason"] for e in ingest(site, tmp_path / "in")["rejected"]]
    assert not [r for r in reasons if "SMITH" in r.upper()]
    assert reasons[2] == "modality MR is not a radiograph (expected CR or DX)"


@pytest.mark.parametrize("encoding", ["implicit", "explicit", "big-endian"])
@pytest.mark.parametrize(("bits_stored", "rows", "cols"), [(12, 96, 80), (8, 97, 81)])
def test_bare_data_set_in_each_uncompressed_encoding_is_stored_as_part10_with_its_pixels(
    encoding, bits_stored, rows, cols, site, tmp_path, data_dir
):
    pixels = np.random.default_rng(3).integers(0, 2**bits_stored, size=(rows, cols))
    geometry = {"bits_stored": bits_stored, "rows": rows, "cols": cols, "pixels": pixels}
    make_dicom(tmp_path / "in" / "before.dcm")
    make_dicom(tmp_path / "in" / "bare.dcm", preamble=False, bare_encoding=encoding, **geometry)
    make_dicom(tmp_path / "in" / "z-after.dcm")

    report = ingest(site, tmp_path / "in")

    assert report["rejected"] == []
    assert [e["file"] for e in report["accepted"]] == ["bare.dcm", "before.dcm", "z-after.dcm"]
    image = Image.objects.get(pk=report["accepted"][0]["image"])
    stored = pydicom.dcmread(data_dir / image.file)  # no force: a Part 10 file
    expected = {
        "implicit": ImplicitVRLittleEndian,
        "explicit": ExplicitVRLittleEndian,
        "big-endian": ExplicitVRBigEndian,
    }[encoding]
    assert stored.file_meta.TransferSyntaxUID == image.transfer_syntax_uid == expected
    np.testing.assert_array_equal(stored.pixel_array, pixels)


def test_deflated_file_is_stored_inflated_with_the_same_pixels(site, tmp_path, data_dir):
    pixels = np.random.default_rng(5).integers(0, 4096, size=(96, 80))
    ds = pydicom.dcmread(make_dicom(tmp_path / "in" / "plain.dcm", pixels=pixels))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm")

    report = ingest(site, tmp_path / "deflated.dcm")

    image = Image.objects.get(pk=report["accepted"][0]["image"])
    stored = pydicom.dcmread(data_dir / image.file)
    assert stored.file_meta.TransferSyntaxUID == image.transfer_syntax_uid
    assert image.transfer_syntax_uid == ExplicitVRLittleEndian
    np.testing.assert_array_equal(stored.pixel_array, pixels)
    assert stored.PatientIdentityRemoved == "YES"


def _fail_on_97_rows(original):
    """`original`, except that it raises for the data set with 97 rows (or read from one)."""

    def wrapper(first, *args, **kwargs):
        result = original(first, *args, **kwargs)
        ds = result if isinstance(result, pydicom.Dataset) else first
        if ds.Rows == 97:
            raise KeyError("/srv/portal/secret/path")
        return result

    return wrapper


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ("read_dataset_from", "unreadable DICOM (KeyError)"),
        ("check_radiograph", "a DICOM attribute cannot be read (KeyError)"),
        ("deidentify", "de-identification failed (KeyError)"),
        ("_complete_file_meta", "the de-identified file cannot be written (KeyError)"),
        ("_write_part10", "the de-identified file cannot be written (KeyError)"),
    ],
)
def test_failure_at_any_step_rejects_that_file_and_the_upload_goes_on(
    step, reason, site, tmp_path, data_dir, monkeypatch
):
    monkeypatch.setattr(prepare_module, step, _fail_on_97_rows(getattr(prepare_module, step)))
    make_dicom(tmp_path / "in" / "a.dcm")
    make_dicom(tmp_path / "in" / "b-odd.dcm", rows=97)
    make_dicom(tmp_path / "in" / "c.dcm")

    report = ingest(site, tmp_path / "in")

    assert report["rejected"] == [{"file": "b-odd.dcm", "reason": reason}]
    assert [e["file"] for e in report["accepted"]] == ["a.dcm", "c.dcm"]
    assert len(stored_files(data_dir)) == 2
    assert not list((data_dir / "tmp").iterdir())


def test_unexpected_error_outside_prepare_rejects_that_file(site, tmp_path, monkeypatch):
    original = prepare_module.prepare
    monkeypatch.setattr(
        prepare_module,
        "prepare",
        lambda path, *a: original(path, *a) if "b" not in path else 1 / 0,
    )
    make_dicom(tmp_path / "in" / "a.dcm")
    make_dicom(tmp_path / "in" / "b.dcm")
    report = ingest(site, tmp_path / "in")
    assert report["rejected"] == [
        {"file": "b.dcm", "reason": "the file could not be processed (ZeroDivisionError)"}
    ]
    assert len(report["accepted"]) == 1


def test_value_the_database_refuses_rejects_that_file(site, tmp_path, data_dir, monkeypatch):
    save = Image.save

    def refuse_97_rows(self, *args, **kwargs):
        if self.rows == 97:
            raise DataError("value out of range")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Image, "save", refuse_97_rows)
    make_dicom(tmp_path / "in" / "a.dcm")
    make_dicom(tmp_path / "in" / "b.dcm", rows=97)

    report = ingest(site, tmp_path / "in")

    assert report["rejected"] == [
        {"file": "b.dcm", "reason": "its attributes cannot be recorded (DataError)"}
    ]
    assert len(stored_files(data_dir)) == 1
    assert not list((data_dir / "tmp").iterdir())


def test_duplicate_instance_is_reported_and_stores_nothing_new(site, tmp_path, data_dir):
    original = make_dicom(tmp_path / "a.dcm")
    copy = tmp_path / "again" / "a-copy.dcm"
    copy.parent.mkdir()
    shutil.copy(original, copy)
    first = ingest(site, original, copy)
    second = ingest(site, original)

    stored = first["accepted"][0]["image"]
    assert [e["file"] for e in first["accepted"]] == ["a.dcm"]
    assert [(e["file"], e["image"]) for e in first["duplicates"]] == [("a-copy.dcm", stored)]
    assert second["accepted"] == []
    assert [(e["file"], e["image"]) for e in second["duplicates"]] == [("a.dcm", stored)]
    assert Image.objects.count() == 1
    assert len(stored_files(data_dir)) == 1


def test_same_instance_in_another_site_is_not_a_duplicate(tmp_path):
    original = make_dicom(tmp_path / "a.dcm")
    ingest(site_create(slug="north"), original)
    report = ingest(site_create(slug="south"), original)
    assert len(report["accepted"]) == 1


def test_real_cr_films_from_pydicom_data(site, tmp_path, data_dir):
    """Real MONOCHROME1 chest films, uncompressed and JPEG 2000, with their odd metadata.
    As shipped they are of an adult; with a child's birth date they are accepted."""
    adult = Path(get_testdata_file("RG1_UNCR.dcm"))
    children = []
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.PatientBirthDate = "19970826"
        children.append(tmp_path / f"child-{name}")
        ds.save_as(children[-1])

    report = ingest(site, adult, *children)

    assert [e["file"] for e in report["rejected"]] == ["RG1_UNCR.dcm"]
    assert "out of scope" in report["rejected"][0]["reason"]
    assert [(e["age_days"], e["sex"]) for e in report["accepted"]] == [(2557, "F"), (2557, "F")]
    uncompressed, j2k = (pydicom.dcmread(data_dir / i.file) for i in Image.objects.all())
    np.testing.assert_array_equal(uncompressed.pixel_array, j2k.pixel_array)
    image = Image.objects.first()
    assert (image.modality, image.photometric_interpretation, image.view_position) == (
        "CR",
        "MONOCHROME1",
        "PA",
    )


@pytest.mark.parametrize(
    ("name", "reason"), [("CT_small.dcm", "modality CT"), ("SC_rgb.dcm", "modality OT")]
)
def test_pydicom_test_files_of_other_kinds_are_rejected(name, reason, site):
    report = ingest(site, Path(get_testdata_file(name)))
    assert reason in report["rejected"][0]["reason"]


def test_parallel_ingest_reports_in_upload_order_and_cleans_up(site, tmp_path, data_dir, settings):
    settings.INGEST = {**settings.INGEST, "WORKERS": 2, "PARALLEL_MIN_FILES": 1}
    folder = tmp_path / "upload"
    names = []
    for i in range(12):
        names.append(f"{i:02d}.dcm")
        make_dicom(folder / names[-1], modality="CT" if i % 5 == 0 else "DX")
    with zipfile.ZipFile(folder / "zz.zip", "w") as zf:
        zf.writestr("inner.dcm", make_dicom(tmp_path / "inner.dcm").read_bytes())

    report = ingest(site, folder)

    assert [e["file"] for e in report["rejected"]] == ["00.dcm", "05.dcm", "10.dcm"]
    accepted = [e["file"] for e in report["accepted"]]
    assert accepted == [n for i, n in enumerate(names) if i % 5] + ["zz.zip/inner.dcm"]
    assert len(stored_files(data_dir)) == 10
    assert not list((data_dir / "tmp").iterdir())
