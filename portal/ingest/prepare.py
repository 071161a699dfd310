"""The CPU-heavy half of ingesting one file, free of Django so it can run in worker processes:
read, check, age, de-identify, write the de-identified file to a private temporary path, hash.

The database half (de-duplicate, record, move into storage) stays in `services`.
"""

import hashlib
import io
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from portal.ingest.deid import Deidentified, Pseudonyms, deidentify
from portal.ingest.dicom import (
    Age,
    Limits,
    Rejected,
    check_radiograph,
    compute_age,
    normalise_sex,
    read_dataset,
)

PIXEL_DATA = Tag(0x7FE0, 0x0010)


@dataclass(frozen=True)
class Prepared:
    """A de-identified file waiting in `tmp_path` to be recorded and moved into storage."""

    tmp_path: str
    size_bytes: int
    sha256: str
    # sha256 of the Pixel Data value as the file stored it: the same film re-exported with
    # new UIDs has the same one.
    pixel_sha256: str
    ids: Deidentified
    age: Age
    sex: str
    acquisition: dict


@dataclass(frozen=True)
class Refused:
    reason: str


# What a file's failure at each step is called in its rejection, with the exception's type
# (never its message: it may quote a tag value or a server path).
_FAILED_STEP = {
    "read": "unreadable DICOM",
    "check": "a DICOM attribute cannot be read",
    "de-identify": "de-identification failed",
    "write": "the de-identified file cannot be written",
}


def prepare(path: str, site_key: bytes, limits: Limits, tmp_dir: str) -> Prepared | Refused:
    """Never raises for a bad file: a failure of one file at any step is its refusal.

    Only an operating-system error while writing (a full disk, a missing folder) is raised:
    that is the server's problem, not the file's, and it stops the upload.
    """
    step = "read"
    try:
        ds = read_dataset(Path(path))
        step = "check"
        check_radiograph(ds, limits)
        age = compute_age(ds)
        sex = normalise_sex(ds.get("PatientSex"))
        pixel_sha256 = hashlib.sha256(ds.PixelData).hexdigest()
        step = "de-identify"
        ids = deidentify(ds, pseudonyms=Pseudonyms(key=site_key), age_days=age.days)
        step = "write"
        _complete_file_meta(ds)
        acquisition = _acquisition(ds)
    except Rejected as exc:
        return Refused(str(exc))
    except Exception as exc:
        return Refused(f"{_FAILED_STEP[step]} ({type(exc).__name__})")
    fd, tmp_name = tempfile.mkstemp(prefix="ingest-", suffix=".dcm", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256 = _write_part10(ds, out)
    except OSError:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    except Exception as exc:
        Path(tmp_name).unlink(missing_ok=True)
        return Refused(f"{_FAILED_STEP['write']} ({type(exc).__name__})")
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Prepared(tmp_name, size, sha256, pixel_sha256, ids, age, sex, acquisition)


def _write_part10(ds: Dataset, out: BinaryIO) -> tuple[int, str]:
    """Write `ds` as a Part 10 file and hash exactly the bytes written.

    pydicom copies a large Pixel Data value through an in-memory buffer; here pydicom writes
    everything else and the pixel element is written straight from the value, so a large
    radiograph is copied once.
    """
    digest = hashlib.sha256()
    size = 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal size
        digest.update(data)
        out.write(data)
        size += len(data)

    meta = ds.file_meta
    ts = meta.TransferSyntaxUID
    if "PixelData" not in ds or not ts.is_little_endian or ts.is_deflated:
        head = io.BytesIO()
        ds.save_as(head, enforce_file_format=True)
        emit(head.getbuffer())
        return size, digest.hexdigest()
    pixels = ds.PixelData
    for elem in [e for e in ds if e.tag > PIXEL_DATA]:  # trailing padding, signatures
        del ds[elem.tag]
    del ds.PixelData
    head = io.BytesIO()
    ds.save_as(head, enforce_file_format=True)
    ds.PixelData = pixels
    emit(head.getbuffer())
    if ts.is_encapsulated:
        # Undefined length: the items as stored, then a sequence delimiter (PS3.5 A.4).
        emit(_element_header(ts, "OB", 0xFFFFFFFF))
        emit(pixels)
        emit(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    else:
        padded = len(pixels) + len(pixels) % 2
        emit(_element_header(ts, "OW" if ds.BitsAllocated > 8 else "OB", padded))
        emit(pixels)
        if padded != len(pixels):
            emit(b"\0")
    return size, digest.hexdigest()


def _element_header(ts: UID, vr: str, length: int) -> bytes:
    if ts.is_implicit_VR:
        return struct.pack("<HHI", 0x7FE0, 0x0010, length)
    return struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr.encode(), 0, length)


def _complete_file_meta(ds: Dataset) -> None:
    """Give the file the Part 10 header it is stored with.

    A bare data set (no header, or one without a transfer syntax) gets the uncompressed
    transfer syntax it was read in, so its pixels decode as they were: Implicit VR Little
    Endian, Explicit VR Little Endian or Explicit VR Big Endian. A deflated file is stored
    inflated, as Explicit VR Little Endian: the same data set and pixels, which every reader
    (the workers, the browser viewer) decodes without an inflate step.
    """
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else None
    if meta is None or not meta.get("TransferSyntaxUID"):
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta = meta or FileMetaDataset()
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta = meta
    elif meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _acquisition(ds: Dataset) -> dict:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        spacing_mm = [float(v) for v in spacing] if spacing else None
    except (TypeError, ValueError):
        spacing_mm = None
    if spacing_mm is not None and not all(math.isfinite(v) and v > 0 for v in spacing_mm):
        spacing_mm = None  # NaN and infinity are not JSON, and no spacing is zero or negative
    return {
        "modality": str(ds.Modality).strip().upper(),
        "view_position": str(ds.get("ViewPosition", "") or "").strip()[:16],
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "pixel_spacing_mm": spacing_mm,
        "photometric_interpretation": str(ds.PhotometricInterpretation).strip().upper(),
        "bits_stored": int(ds.get("BitsStored", ds.BitsAllocated)),
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "manufacturer": str(ds.get("Manufacturer", "") or "").strip()[:128],
        "burned_in_annotation": str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES",
    }
