"""Small DICOM files made with pydicom for the tests, full of fake PHI in many places."""

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

# Every one of these strings must be absent from what ingest stores.
PHI = {
    "PatientName": "Doe^Jane^Marie",
    "PatientID": "MRN8675309",
    "OtherPatientIDs": "OTHERID4242",
    "PatientAddress": "42 Wallaby Way Sydney",
    "AccessionNumber": "ACC5551234",
    "InstitutionName": "St Example Childrens Hospital",
    "InstitutionAddress": "1 Hospital Road Springfield",
    "ReferringPhysicianName": "House^Gregory",
    "PerformingPhysicianName": "Quinn^Michaela",
    "OperatorsName": "Radtech^Rita",
    "StudyID": "STUDY777001",
    "StationName": "XRAYROOM9",
    "PatientMotherBirthName": "Mothername^Maiden",
    "ImageComments": "Patient Jane Doe fell off bike",
    "StudyDescription": "CHEST JANE DOE",
}
PRIVATE_PHI = "SECRETPRIVATEVALUE"
SEQUENCE_PHI = "SEQPHYSICIAN^Nested"
BIRTH_DATE = "20150310"
STUDY_DATE = "20200115"


def make_dicom(
    path: Path,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    rows: int = 96,
    cols: int = 80,
    bits_stored: int = 12,
    transfer_syntax: str = ExplicitVRLittleEndian,
    birth_date: str | None = BIRTH_DATE,
    study_date: str | None = STUDY_DATE,
    patient_age: str | None = None,
    sex: str | None = "F",
    frames: int = 1,
    samples: int = 1,
    sop_instance_uid: str | None = None,
    with_pixels: bool = True,
    seed: int | None = None,
    pixels: np.ndarray | None = None,
    preamble: bool = True,
    bare_encoding: str = "implicit",
    extra: dict | None = None,
) -> Path:
    """Write one DICOM file; the defaults make a valid 4 y 10 m old girl's chest DX.

    `preamble=False` writes a bare data set (no Part 10 header) in `bare_encoding`:
    "implicit" (Implicit VR Little Endian), "explicit" (Explicit VR Little Endian) or
    "big-endian" (Explicit VR Big Endian).

    Each call makes a film of its own (random pixels) unless `seed` or `pixels` is given:
    ingest treats the same pixels in a site as the same film."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITALPACS"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = modality
    ds.ViewPosition = "PA"
    ds.Manufacturer = "ACME Imaging"
    ds.PixelSpacing = [0.15, 0.15]
    ds.BurnedInAnnotation = "NO"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    if birth_date is not None:
        ds.PatientBirthDate = birth_date
    if study_date is not None:
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.ContentDate = study_date
        ds.StudyTime = "101500"
    if patient_age is not None:
        ds.PatientAge = patient_age
    if sex is not None:
        ds.PatientSex = sex
    request = Dataset()
    request.RequestingPhysician = SEQUENCE_PHI
    request.RequestedProcedureID = "REQPROC99"
    ds.RequestAttributesSequence = Sequence([request])
    block = ds.private_block(0x0011, "ACME PRIVATE", create=True)
    block.add_new(0x01, "LO", PRIVATE_PHI)
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)

    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if samples > 1:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if with_pixels:
        if pixels is None:
            rng = np.random.default_rng(seed)
            shape = (frames, rows, cols, samples) if frames > 1 else (rows, cols, samples)
            pixels = rng.integers(0, 2**bits_stored, size=shape).squeeze(-1 if samples == 1 else ())
        dtype = np.uint16 if ds.BitsAllocated == 16 else np.uint8
        ds.PixelData = np.ascontiguousarray(pixels, dtype=dtype).tobytes()
        if transfer_syntax in (RLELossless, JPEG2000Lossless):
            ds.compress(transfer_syntax)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        del ds.file_meta  # a bare data set, as some old archives hold
        implicit, little = {
            "implicit": (True, True),
            "explicit": (False, True),
            "big-endian": (False, False),
        }[bare_encoding]
        if not little and with_pixels and ds.BitsAllocated == 16:
            # pydicom writes OW bytes as they are: big endian pixels must be swapped here.
            ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
        ds.save_as(path, implicit_vr=implicit, little_endian=little)
    return path
