"""`elements.get` gives what pydicom's `ds.get` gives, value and type, for every standard
attribute of every real file the installed packages ship and of files written to be awkward
(character sets, several values, empty values, each byte order and VR encoding)."""

import importlib.util
import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from portal.ingest.dicom import elements
from portal.ingest.dicom.reading import read_dataset_from


def _package_files(package: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return []
    return [p for p in Path(spec.origin).parent.rglob("*.dcm") if p.is_file()]


REAL_FILES = sorted(
    {Path(p) for p in get_testdata_files() if Path(p).is_file()}
    | {p for package in ("nibabel", "pynetdicom", "deid_data") for p in _package_files(package)}
)


def _read(data: bytes) -> Dataset | None:
    try:
        return read_dataset_from(io.BytesIO(data), size=len(data))
    except Exception:  # not DICOM, or refused: nothing to compare
        return None


def _same_as_pydicom(data: bytes) -> int:
    """Compare every standard top-level and file meta attribute of the file `data`, read twice:
    pydicom converts an element in place as it gives its value, so each side reads its own."""
    fast, slow = _read(data), _read(data)
    if fast is None or slow is None:
        return 0
    compared = 0
    pairs = [(fast, slow)]
    if isinstance(getattr(fast, "file_meta", None), FileMetaDataset):
        pairs.append((fast.file_meta, slow.file_meta))
    for ours, theirs in pairs:
        for tag in list(theirs.keys()):
            keyword = keyword_for_tag(tag)
            if not keyword or tag_for_keyword(keyword) != tag or keyword == "PixelData":
                continue  # private, a repeating group's (overlays), or the pixels
            try:
                expected = theirs.get(keyword)
            except Exception as exc:  # a value pydicom cannot convert: nor may we
                with pytest.raises(type(exc)):
                    elements.get(ours, keyword)
                continue
            got = elements.get(ours, keyword)
            assert got == expected, keyword
            assert type(got) is type(expected), keyword
            compared += 1
    assert elements.get(fast, "PatientSpeciesCodeSequence", "absent") == slow.get(
        "PatientSpeciesCodeSequence", "absent"
    )
    return compared


def test_every_attribute_of_every_real_file_is_pydicoms_value():
    assert len(REAL_FILES) > 250
    compared = sum(_same_as_pydicom(path.read_bytes()) for path in REAL_FILES)
    assert compared > 5000


def _awkward(charset: str | list[str]) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.Modality = "DX "  # padded
    ds.ImageType = ["ORIGINAL", "PRIMARY"]  # several values
    ds.BodyPartExamined = ""  # empty
    ds.PatientSex = "F"
    ds.PatientAge = "005Y"
    ds.StudyDate = "20200102"
    ds.Rows, ds.Columns, ds.BitsAllocated = 512, 513, 16
    ds.LargestImagePixelValue = 4095  # US or SS by PixelRepresentation: pydicom's to say
    ds.PixelRepresentation = 0
    ds.Manufacturer = "  Acme\\Med  "  # leading spaces; a backslash in LO splits it
    ds.InstitutionName = "Klinik Müller"
    ds.StudyDescription = "\x1b$B$3$s\x1b(B"  # an ISO 2022 escape in ASCII bytes
    ds.InstitutionalDepartmentName = "  Radiology   "  # pydicom keeps leading spaces
    ds.ViewPosition = " PA"
    ds.PixelSpacing = [0.1, 0.2]
    ds.NumberOfFrames = 1
    ds.PatientID = "ID 12"
    ds.StudyInstanceUID = "1.2.3.4\0"
    return ds


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192", ["", "ISO 2022 IR 87"]])
def test_awkward_values_are_pydicoms(syntax, charset):
    ds = _awkward(charset)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    assert _same_as_pydicom(buffer.getvalue()) >= 18


def test_an_absent_attribute_is_the_default_and_a_keyword_must_be_one():
    ds = Dataset()
    assert elements.get(ds, "Rows") is None
    assert elements.get(ds, "Modality", "") == ""
    with pytest.raises(KeyError):
        elements.get(ds, "NotAKeyword")
