"""Ingest over every real file that pydicom and pydicom-data ship (about 250 files: 13
modalities, 13 transfer syntaxes, odd encodings, broken files, non-DICOM files, DICOMDIRs).

Nothing may crash or stop the upload; every file gets its line in the report; every file that
is accepted must decode, from storage, to exactly the pixels of the file that was sent.
"""

import importlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from portal.ingest.archive import Source, is_junk
from portal.ingest.models import Image, Upload, UploadFile
from portal.ingest.services import upload_create, upload_process
from tests.dicom_files import BIRTH_DATE, STUDY_DATE

pytestmark = pytest.mark.django_db(transaction=True)

CORPUS = sorted(Path(p) for p in get_testdata_files() if Path(p).is_file())
RADIOGRAPHS = {"CR", "DX"}
# The real chest films in the corpus (CR, MONOCHROME1, uncompressed and JPEG 2000): once they
# are a child's, each must be accepted.
CHEST_FILMS = {f"RG{n}_{ts}.dcm" for n in (1, 3) for ts in ("UNCI", "UNCR", "J2KI", "J2KR")}


def _as_child(src: Path, dst: Path, *, every_image_as_radiograph: bool) -> None:
    """Copy `src` to `dst`; a radiograph (or, `every_image_as_radiograph`, any file with pixel
    data, relabelled DX) becomes a child's, in the encoding it had and with or without its
    Part 10 header as it had. A file pydicom cannot read or write again goes as it is."""
    dst.parent.mkdir(parents=True)
    try:
        ds = pydicom.dcmread(src, force=True)
        if every_image_as_radiograph and "PixelData" in ds:
            ds.Modality = "DX"
        if str(ds.get("Modality", "")).strip().upper() not in RADIOGRAPHS:
            shutil.copy(src, dst)
            return
        ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
        if "BodyPartExamined" in ds:  # RG3 is an EXTREMITY: a child's chest film now
            ds.BodyPartExamined = "CHEST"
        # A new instance, so that films shipped in several encodings are not duplicates.
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(dst)
    except Exception:
        dst.unlink(missing_ok=True)
        shutil.copy(src, dst)


def _pixels(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path, force=True)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:  # a bare data set: as it was read
        implicit, little = ds.original_encoding
        ds.file_meta = meta or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
    return ds.pixel_array


@pytest.mark.slow  # over 200 files, each ingested and decoded back
@pytest.mark.parametrize(
    "every_image_as_radiograph",
    [False, True],
    ids=["radiographs-as-children", "every-image-as-a-child-radiograph"],
)
def test_every_real_file_is_accepted_with_its_pixels_or_rejected_with_a_reason(
    every_image_as_radiograph, site, tmp_path, data_dir
):
    assert len(CORPUS) > 200  # pydicom's test files and pydicom-data's
    folder = tmp_path / "upload"
    sent = {}
    for index, src in enumerate(CORPUS):
        name = f"{index:03d}/{src.name}"
        _as_child(src, folder / name, every_image_as_radiograph=every_image_as_radiograph)
        if not is_junk(name):  # DICOMDIR indexes are skipped as litter, not reported
            sent[name] = folder / name

    names: dict[int, str] = {}  # report line -> the name the test gave the file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's complaints about the broken files
        upload = upload_process(
            upload=upload_create(site=site, source=Upload.Source.CLI),
            sources=[Source.given(folder)],
            on_file=lambda record, ref: names.__setitem__(record.pk, ref.name),
        )

    assert (upload.status, upload.failure_reason) == (Upload.Status.DONE, "")
    assert upload.processed_files == upload.total_files == len(sent)
    lines = list(UploadFile.objects.filter(upload=upload).select_related("image"))
    assert sorted(names[line.pk] for line in lines) == sorted(sent)
    secret_paths = (str(tmp_path), str(Path(pydicom.__file__).parent.parent))
    for line in lines:
        assert line.outcome in UploadFile.Outcome.values
        if line.outcome != UploadFile.Outcome.ACCEPTED:
            assert line.reason, names[line.pk]
            assert not any(p in line.reason for p in secret_paths), (names[line.pk], line.reason)
    # A duplicate (the same film shipped twice, e.g. implicit and explicit VR) names an
    # image whose pixels are its own: it is checked with the accepted files.
    kept = {names[line.pk]: line.image for line in lines if line.image is not None}
    accepted = [line for line in lines if line.outcome == UploadFile.Outcome.ACCEPTED]
    assert {Path(name).name for name in kept} >= CHEST_FILMS
    if every_image_as_radiograph:  # CT, MR, NM, US ... films of every encoding
        assert len(accepted) >= 30
    for name, image in kept.items():
        stored = _pixels(data_dir / image.file)
        original = _pixels(sent[name])
        assert stored.shape == original.shape == (image.rows, image.columns), name
        np.testing.assert_array_equal(stored, original, err_msg=name)
    duplicates = [line for line in lines if line.outcome == UploadFile.Outcome.DUPLICATE]
    assert all(line.image is not None for line in duplicates)
    assert len(accepted) + len(duplicates) == len(kept)
    assert Image.objects.count() == len(accepted)
    assert len(list((data_dir / "images").rglob("*.dcm"))) == len(accepted)
    assert not list((data_dir / "tmp").iterdir())


def _package_files(package: str) -> list[Path]:
    """The DICOM files a package ships (Part 10 files, and files named .dcm)."""
    root = Path(importlib.import_module(package).__file__).parent
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as fh:
                if fh.read(132)[128:] == b"DICM" or path.suffix.lower() == ".dcm":
                    found.append(path)
    return found


# Real files that other projects ship, beyond pydicom's: deid-data's (a cat's DX, CT and
# ultrasound, JPEG baseline colour photographs), nibabel's MR slices (implicit, explicit, JPEG
# 2000) and pynetdicom's (big endian, deflated, JPEG 2000, an RT image).
PACKAGE_CORPUS = {
    package: _package_files(package) for package in ("deid_data", "nibabel", "pynetdicom")
}


def _expected_refusal(ds) -> str | None:
    """Why a real image, relabelled a child's chest film, must be refused; None if it must
    be accepted."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        return "multi-frame"
    if int(ds.get("SamplesPerPixel", 1)) > 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return "colour image"
    if ds.pixel_array.min() == ds.pixel_array.max():
        return "constant pixel data"
    return None


def test_real_files_of_other_packages_as_childrens_chest_films_keep_encoding_and_pixels(
    site, tmp_path, data_dir
):
    """Every image, relabelled a child's chest film (DX, CHEST, a child's dates, no species)
    in the encoding it was shipped in, is accepted with exactly its pixels, or refused for
    what it is (colour, multi-frame, blank); nothing else is refused."""
    assert sum(len(files) for files in PACKAGE_CORPUS.values()) >= 25
    folder = tmp_path / "upload"
    sent, expected = {}, {}
    for package, files in PACKAGE_CORPUS.items():
        for index, src in enumerate(files):
            ds = pydicom.dcmread(src, force=True)
            if "PixelData" not in ds:
                continue
            ds.Modality, ds.BodyPartExamined = "DX", "CHEST"
            ds.PatientBirthDate, ds.StudyDate = BIRTH_DATE, STUDY_DATE
            for keyword in ("PatientSpeciesDescription", "PatientBreedDescription", "PatientAge"):
                if keyword in ds:
                    delattr(ds, keyword)
            ds.SOPInstanceUID = generate_uid()
            name = f"{package}/{index:02d}-{src.name}"
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(folder / name)
            sent[name] = folder / name
            expected[name] = _expected_refusal(ds)
    assert sum(reason is None for reason in expected.values()) >= 10

    names: dict[int, str] = {}
    upload = upload_process(
        upload=upload_create(site=site, source=Upload.Source.CLI),
        sources=[Source.given(folder)],
        on_file=lambda record, ref: names.__setitem__(record.pk, ref.name),
    )

    assert (upload.status, upload.failure_reason) == (Upload.Status.DONE, "")
    lines = list(UploadFile.objects.filter(upload=upload).select_related("image"))
    assert sorted(names[line.pk] for line in lines) == sorted(sent)
    for line in lines:
        name, reason = names[line.pk], expected[names[line.pk]]
        if reason is None:  # the same pixels shipped twice are a duplicate of the first
            assert line.outcome in (UploadFile.Outcome.ACCEPTED, UploadFile.Outcome.DUPLICATE), (
                name,
                line.reason,
            )
            stored = _pixels(data_dir / line.image.file)
            np.testing.assert_array_equal(stored, _pixels(sent[name]), err_msg=name)
            transfer_syntax = pydicom.dcmread(sent[name]).file_meta.TransferSyntaxUID
            if not transfer_syntax.is_deflated:  # stored inflated, as docs/ingest.md says
                assert line.image.transfer_syntax_uid == transfer_syntax, name
        else:
            assert line.outcome == UploadFile.Outcome.REJECTED, name
            assert line.reason.startswith(reason), (name, line.reason)
            assert str(tmp_path) not in line.reason
