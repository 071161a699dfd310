"""The CPU-heavy half of ingesting one file, free of Django so it can run in worker processes:
read, check, age, de-identify, write the de-identified file to a private temporary path, hash.

The database half (de-duplicate, record, move into storage) stays in `services`.
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

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
        with os.fdopen(fd, "w+b") as out:
            ds.save_as(out, enforce_file_format=True)
            out.flush()
            out.seek(0)
            # Hash exactly the bytes that will be stored.
            sha256 = hashlib.file_digest(out, "sha256").hexdigest()
            size = out.tell()
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Prepared(tmp_name, size, sha256, ids, age, sex, acquisition)


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
