"""The CPU-heavy half of ingesting one file, free of Django so it can run in worker processes:
read, check, age, de-identify, write the de-identified file to a private temporary path, hash.

The database half (de-duplicate, record, move into storage) stays in `services`.
"""

import hashlib
import io
import math
import os
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def _not_importable(*names: str) -> Iterator[None]:
    """Modules that imports inside the block find missing, unless already imported."""
    hidden = [name for name in names if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]


# pydicom imports `requests` and `tqdm` where they are installed, for downloading its test
# files: 60 ms of the fork server's start, which the first files of `manage.py ingest` wait
# for. Nothing here downloads, and pydicom goes without them (it falls back to urllib).
with _not_importable("requests", "tqdm"):
    import pydicom

pydicom_version_info = pydicom.__version_info__
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

from inference_worker.ages import normalise_sex
from portal.ingest.deid import Pseudonyms, deidentify
from portal.ingest.dicom import (
    Rejected,
    check_radiograph,
    compute_age,
    elements,
    file_warnings,
    read_dataset_from,
)
from portal.ingest.outcomes import Limits, Prepared, Refused

PIXEL_DATA = Tag(0x7FE0, 0x0010)
# Every stored file's 128-byte preamble (PS3.10 7.1): zeros, never the sender's, which may hold
# anything (a TIFF header with its text fields, a planted name).
PREAMBLE = bytes(128)


# What a file's failure at each step is called in its rejection, with the exception's type
# (never its message: it may quote a tag value or a server path).
_FAILED_STEP = {
    "read": "unreadable DICOM",
    "check": "a DICOM attribute cannot be read",
    "de-identify": "de-identification failed",
    "write": "the de-identified file cannot be written",
}


def prepare(
    source: str | bytes, site_key: bytes, limits: Limits, tmp_dir: str
) -> Prepared | Refused:
    """Never raises for a bad file: a failure of one file at any step is its refusal.
    `source` is the file's path, or its bytes as a peer sent them (C-STORE, STOW-RS), which
    then need not be written to a file first.

    Only an operating-system error while writing (a full disk, a missing folder) is raised:
    that is the server's problem, not the file's, and it stops the upload.
    """
    step = "read"
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as fh:
            ds = read_dataset_from(fh, size=_size(fh))
            step = "check"
            # The pixels are read once, from this open file, when the checks need them.
            check_radiograph(ds, limits, lambda: _load_pixels(ds, fh))
            age = compute_age(ds)
            warnings = file_warnings(ds, age)
            sex = normalise_sex(elements.get(ds, "PatientSex"))
            _load_pixels(ds, fh)
        step = "de-identify"
        ids = deidentify(ds, pseudonyms=Pseudonyms(key=site_key), age_days=age.days)
        pixel_sha256 = hashlib.sha256(ds.PixelData).hexdigest()  # as stored
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
    return Prepared(tmp_name, size, sha256, pixel_sha256, ids, age, sex, acquisition, warnings)


def _size(fh: BinaryIO) -> int:
    if isinstance(fh, io.BytesIO):
        return fh.getbuffer().nbytes
    return os.fstat(fh.fileno()).st_size


def _load_pixels(ds: Dataset, fh: BinaryIO) -> bytes:
    """The Pixel Data value, read from the open file where it was deferred (once, and without
    pydicom opening the file again) and kept in `ds` as read."""
    elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    # Encapsulated pixel data (undefined length) are pydicom's to read: it finds their end.
    if elem.value is None and isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF:
        fh.seek(elem.value_tell)
        value = fh.read(elem.length)
        if len(value) != elem.length:
            raise EOFError("the file ends inside the pixel data")
        ds[PIXEL_DATA] = elem._replace(value=value)
    return ds.PixelData


def _write_part10(ds: Dataset, out: BinaryIO) -> tuple[int, str]:
    """Write `ds` as a Part 10 file and hash exactly the bytes written: the one writer of the
    files the portal stores (uploads, the CLI, imported sets and the demo all go through
    `prepare`), so the one place that writes the preamble as `PREAMBLE`.

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

    ds.preamble = PREAMBLE
    meta = ds.file_meta
    ts = meta.TransferSyntaxUID
    if "PixelData" not in ds or not ts.is_little_endian or ts.is_deflated:
        head = io.BytesIO()
        ds.save_as(head, enforce_file_format=True)
        emit(head.getbuffer())
        return size, digest.hexdigest()
    pixel_elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    pixels = ds.PixelData
    # Trailing padding, signatures. (Iterating a Dataset decodes every element; its keys do not.)
    for tag in [t for t in ds.keys() if t > PIXEL_DATA]:  # noqa: SIM118
        del ds[tag]
    del ds[PIXEL_DATA]
    emit(_encode_head(ds, implicit=ts.is_implicit_VR))
    ds[PIXEL_DATA] = pixel_elem
    if ts.is_encapsulated:
        # Undefined length: the items as stored, then a sequence delimiter (PS3.5 A.4).
        emit(_element_header(ts, "OB", 0xFFFFFFFF))
        emit(pixels)
        emit(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    else:
        padded = len(pixels) + len(pixels) % 2
        emit(_element_header(ts, "OW" if elements.get(ds, "BitsAllocated") > 8 else "OB", padded))
        emit(pixels)
        if padded != len(pixels):
            emit(b"\0")
    return size, digest.hexdigest()


def _encode_head(ds: Dataset, *, implicit: bool) -> bytes:
    """Preamble, File Meta Information and data set, byte for byte as pydicom's `dcmwrite`
    (enforce_file_format) writes them in little endian, only faster: pydicom writes the file
    meta, each common element is encoded here (`_encode_plain`), and any other goes through
    pydicom's own element writer."""
    fp = DicomBytesIO()
    meta = _encode_meta(ds.file_meta)
    if meta is None:
        shell = Dataset()
        shell.file_meta = ds.file_meta
        shell.preamble = PREAMBLE
        _write_meta(fp, shell)
    else:
        fp.write(meta)
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    # pydicom re-encodes every element when the encoding or the character set changed
    # (`write_dataset`); it does so here too.
    if ds.original_encoding != (implicit, True) or (ds.original_character_set != ds._character_set):
        write_dataset(fp, ds)
        return fp.getvalue()
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths, which pydicom does not write (PS3.5 7.2)
        elem = ds.get_item(tag)
        encoded = _encode_plain(elem, implicit, encodings)
        if encoded is None and elem.VR == "SQ":
            encoded = _encode_code_sequence(elem, implicit, encodings)
        if encoded is None:
            write_data_element(fp, elem, encodings)
        else:
            fp.write(encoded)
    return fp.getvalue()


def _write_meta(fp: DicomBytesIO, shell: Dataset) -> None:
    """What `dcmwrite(fp, shell, enforce_file_format=True)` writes for a data set with no
    elements of its own: the preamble, the DICM prefix and the File Meta Information, made
    valid as dcmwrite makes it. Without the deep copy of the file meta that dcmwrite makes
    first, which costs about as much as the rest of the header: the file meta is ours to
    change, the data set being written once and then dropped."""
    meta = shell.file_meta
    preamble = shell.preamble
    if len(preamble) != 128:
        raise ValueError("the preamble must be 128 bytes long")
    if meta.get("MediaStorageSOPClassUID") is None:
        meta.MediaStorageSOPClassUID = None  # as dcmwrite sets it from an empty data set
    if meta.get("MediaStorageSOPInstanceUID") is None:
        meta.MediaStorageSOPInstanceUID = None
    validate_file_meta(meta, enforce_standard=True)
    fp.write(preamble)
    fp.write(b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)


# The File Meta Information elements `deid._file_meta` makes, and the ones `validate_file_meta`
# adds to them (enforce_standard): what `_encode_meta` writes without pydicom.
_META_GIVEN = (0x00020002, 0x00020003, 0x00020010)
_META_VERSION = b"\x00\x01"
_META_IMPLEMENTATION = (
    (0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID),
    (0x00020013, "SH", f"PYDICOM {'.'.join(pydicom_version_info)}"),
)


def _encode_meta(meta: FileMetaDataset) -> bytes | None:
    """Preamble, DICM prefix and File Meta Information, byte for byte as `_write_meta` writes
    them, for the header every de-identified file has (`deid._file_meta`: the SOP class, the
    instance and the transfer syntax, each one non-empty ASCII value): pydicom's meta writer
    validates and encodes through a data set of its own, which costs a sixth of a small
    film's preparation. None for any other header, which `_write_meta` writes."""
    if sorted(meta.keys()) != list(_META_GIVEN):
        return None
    values = [(tag, "UI", meta.get_item(tag).value) for tag in _META_GIVEN]
    body = [struct.pack("<HH2sHI", 2, 1, b"OB", 0, 2) + _META_VERSION]
    for tag, vr, value in values + list(_META_IMPLEMENTATION):
        if not isinstance(value, str) or not value or not value.isascii():
            return None
        if len(value) % 2:
            value += "\0" if vr == "UI" else " "
        if len(value) > 0xFFFF:
            return None
        body.append(struct.pack("<HH2sH", 2, tag & 0xFFFF, vr.encode(), len(value)))
        body.append(value.encode())
    elements = b"".join(body)
    length = struct.pack("<HH2sHI", 2, 0, b"UL", 4, len(elements))
    return PREAMBLE + b"DICM" + length + elements


# Written by pydicom as `str.encode(default_encoding)` padded to even length, whatever the
# character set: the value representations of ASCII text.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
# Encoded in the data set's character set; ASCII text encodes alike in each of one value.
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_NUMBER_FORMATS = {"US": "<H", "UL": "<I", "SS": "<h", "SL": "<i"}


def _encode_plain(
    elem: DataElement | RawDataElement, implicit: bool, encodings: object
) -> bytes | None:
    """An element as pydicom's `write_data_element` encodes it, for the common cases that need
    none of its machinery: a value as read (written back as it is), one text value, one whole
    number. None for anything else."""
    vr, value = elem.VR, elem.value
    if isinstance(elem, RawDataElement):
        if not isinstance(value, bytes) or elem.length == 0xFFFFFFFF:
            return None
    elif type(value) is str and (
        vr in _ASCII_VRS or (vr in _TEXT_VRS and value.isascii() and isinstance(encodings, str))
    ):
        if len(value) % 2:
            value += "\0" if vr == "UI" else " "
        try:
            value = value.encode(default_encoding)
        except UnicodeError:
            return None
    elif vr in _NUMBER_FORMATS and type(value) is int:
        try:
            value = struct.pack(_NUMBER_FORMATS[vr], value)
        except struct.error:
            return None  # out of range: pydicom's error
    else:
        return None
    group, element, length = elem.tag >> 16, elem.tag & 0xFFFF, len(value)
    if implicit:
        return struct.pack("<HHI", group, element, length) + value
    if vr in EXPLICIT_VR_LENGTH_32:
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, length) + value
    if vr not in STANDARD_VR or length > 0xFFFF:
        return None  # pydicom's own rules for these (an unknown VR, a value too long for it)
    return struct.pack("<HH2sH", group, element, vr.encode(), length) + value


# The parts of a code item (PS3.3 8.8) that `deid` writes in its sequences of codes.
_CODE_ITEM_TAGS = [Tag(0x0008, 0x0100), Tag(0x0008, 0x0102), Tag(0x0008, 0x0104)]
_encoded_code_sequences: dict[tuple, bytes] = {}


def _encode_code_sequence(elem: DataElement, implicit: bool, encodings: object) -> bytes | None:
    """A sequence of code items of plain text values (the same in every de-identified file:
    `deid.METHOD_CODES`) as pydicom's `write_data_element` encodes it, encoded by pydicom once
    and then remembered: pydicom writes a sequence through a data set per item, which costs
    as much as the rest of the data set. None for any other sequence."""
    # pydicom's Sequence is a MutableSequence, not a list.
    if not isinstance(encodings, str) or not isinstance(elem.value, Sequence):
        return None
    key: list[object] = [elem.tag, implicit, encodings, elem.is_undefined_length]
    for item in elem.value:
        if sorted(item.keys()) != _CODE_ITEM_TAGS:
            return None
        values = tuple(item.get_item(tag).value for tag in _CODE_ITEM_TAGS)
        vrs = tuple(item.get_item(tag).VR for tag in _CODE_ITEM_TAGS)
        if any(type(v) is not str for v in values):
            return None
        key.append((values, vrs, item.is_undefined_length_sequence_item))
    encoded = _encoded_code_sequences.get(frozen := tuple(key))
    if encoded is None:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, True
        write_data_element(fp, elem, encodings)
        encoded = fp.getvalue()
        if len(_encoded_code_sequences) < 64:  # a handful of sequences and character sets
            _encoded_code_sequences[frozen] = encoded
    return encoded


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
    if meta is None or not elements.get(meta, "TransferSyntaxUID"):
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
    spacing = elements.get(ds, "PixelSpacing") or elements.get(ds, "ImagerPixelSpacing")
    try:
        spacing_mm = [float(v) for v in spacing] if spacing else None
    except (TypeError, ValueError):
        spacing_mm = None
    if spacing_mm is not None and not all(math.isfinite(v) and v > 0 for v in spacing_mm):
        spacing_mm = None  # NaN and infinity are not JSON, and no spacing is zero or negative
    return {
        "modality": str(elements.get(ds, "Modality")).strip().upper(),
        "view_position": str(elements.get(ds, "ViewPosition", "") or "").strip()[:16],
        "rows": int(elements.get(ds, "Rows")),
        "columns": int(elements.get(ds, "Columns")),
        "pixel_spacing_mm": spacing_mm,
        "photometric_interpretation": str(elements.get(ds, "PhotometricInterpretation"))
        .strip()
        .upper(),
        "bits_stored": int(elements.get(ds, "BitsStored", elements.get(ds, "BitsAllocated"))),
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "manufacturer": str(elements.get(ds, "Manufacturer", "") or "").strip()[:128],
        "burned_in_annotation": str(elements.get(ds, "BurnedInAnnotation", "") or "").upper()
        == "YES",
    }
