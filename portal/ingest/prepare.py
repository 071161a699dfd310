"""The CPU-heavy half of ingesting one file, free of Django so it can run in worker processes:
read, check, age, de-identify, write the de-identified file to a private temporary path, hash.

The database half (de-duplicate, record, move into storage) stays in `services`.
"""

import hashlib
import io
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

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
    ids: Deidentified
    age: Age
    sex: str
    acquisition: dict


@dataclass(frozen=True)
class Refused:
    reason: str


def prepare(path: str, site_key: bytes, limits: Limits, tmp_dir: str) -> Prepared | Refused:
    """Never raises for a bad file: odd real-world files are refused with a reason."""
    try:
        ds = read_dataset(Path(path))
        check_radiograph(ds, limits)
        age = compute_age(ds)
        sex = normalise_sex(ds.get("PatientSex"))
        ids = deidentify(ds, pseudonyms=Pseudonyms(key=site_key), age_days=age.days)
        _complete_file_meta(ds)
        acquisition = _acquisition(ds)
    except Rejected as exc:
        return Refused(str(exc))
    except Exception as exc:  # no message: it may quote a tag value
        return Refused(f"unreadable DICOM ({type(exc).__name__})")
    fd, tmp_name = tempfile.mkstemp(prefix="ingest-", suffix=".dcm", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256 = _write_part10(ds, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Prepared(tmp_name, size, sha256, ids, age, sex, acquisition)


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
    if "PixelData" not in ds or not ts.is_little_endian:
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
    """Bare data sets (no Part 10 header) get one, in the encoding they were read with."""
    meta = ds.file_meta if isinstance(getattr(ds, "file_meta", None), FileMetaDataset) else None
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, _little = getattr(ds, "original_encoding", (True, True))
        meta = meta or FileMetaDataset()
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta = meta
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _acquisition(ds: Dataset) -> dict:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        spacing_mm = [float(v) for v in spacing] if spacing else None
    except (TypeError, ValueError):
        spacing_mm = None
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
