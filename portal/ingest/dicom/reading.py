"""Reading a file as DICOM: sniffing its first bytes, parsing it, and whether a codec may run."""

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from inference_worker import quiet_pydicom
from portal.ingest.dicom.checks import transfer_syntax
from portal.ingest.dicom.errors import Rejected
from portal.ingest.dicom.pixels import PIXEL_DATA

# pydicom's warnings about invalid values quote the value, which may be PHI: we validate what
# we use ourselves and keep pydicom quiet.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
# Nor do its warnings and log messages reach stderr or a log, here and in ingest's worker
# processes (which import this module and nothing of Django's): they quote the file's path.
quiet_pydicom.install()

NOT_DICOM = "not a DICOM file (no DICM prefix and not parseable)"
TRUNCATED = "truncated file: it ends inside a DICOM element"
# How pydicom says, by a warning rather than an error, that the file ended inside a sequence or
# the encapsulated pixel data ("End of file reached before delimiter (FFFE,E0DD) found in file
# PATH"); it keeps nothing of the data set then.
_EOF_MESSAGE = "End of file reached"


# Values larger than this are read only when used, so that a file rejected by its header never
# has its pixel data read (PS3.5 puts Pixel Data last; a radiograph's is megabytes).
DEFER_BYTES = 64 * 1024
_SNIFF_BYTES = 132
# Every VR of PS3.5 Table 6.2-1: the two bytes after the first tag of an explicit-VR data set.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)


def read_dataset(path: Path) -> Dataset:
    """Parse a file as DICOM; files without the DICM prefix are tried as a bare data set."""
    with path.open("rb") as fh:
        return read_dataset_from(fh, size=path.stat().st_size)


def read_dataset_from(fh: BinaryIO, *, size: int) -> Dataset:
    """Parse an open file of `size` bytes. The first 132 bytes decide, before anything else is
    read, whether it is Part 10 (`DICM` at 128) or plausibly a bare data set (its first element
    a plausible tag and VR or length in one of the three uncompressed encodings): anything else
    is rejected at once, whatever its size. Large values (the pixel data) are deferred."""
    head = fh.read(_SNIFF_BYTES)
    has_prefix = head[128:132] == b"DICM"
    if not has_prefix and not plausible_bare_data_set(head, size):
        raise Rejected(NOT_DICOM)
    fh.seek(0)
    # pydicom's messages (they quote the path) are only matched here, never passed on.
    with quiet_pydicom.collecting() as messages:
        try:
            ds = pydicom.dcmread(fh, force=not has_prefix, defer_size=DEFER_BYTES)
            if transfer_syntax(ds) == DeflatedExplicitVRLittleEndian:
                # Deferred values would be read back from the deflated file at inflated offsets.
                fh.seek(0)
                ds = pydicom.dcmread(fh, force=not has_prefix)
        except InvalidDicomError as exc:
            raise Rejected(NOT_DICOM) from exc
        except (EOFError, OSError) as exc:
            raise Rejected(TRUNCATED) from exc
        except zlib.error as exc:  # a deflated data set whose stream is cut or damaged
            raise Rejected(
                "truncated or damaged file: its deflated data set does not inflate"
            ) from exc
        except Exception as exc:
            if any(m.startswith(_EOF_MESSAGE) for m in messages):
                raise Rejected(TRUNCATED) from exc
            reason = f"unreadable DICOM ({type(exc).__name__})" if has_prefix else NOT_DICOM
            raise Rejected(reason) from exc
    if not has_prefix and not _looks_like_dicom(ds):
        raise Rejected(NOT_DICOM)
    if any(m.startswith(_EOF_MESSAGE) for m in messages) or _ends_short(ds, size):
        raise Rejected(TRUNCATED)
    return ds


def _ends_short(ds: Dataset, size: int) -> bool:
    """Whether the file ends inside its File Meta Information (by its group length), or inside
    the value of the data set's last element or of its Pixel Data (pydicom reads a short last
    value without a word, and defers large ones unread)."""
    meta_length = getattr(ds, "file_meta", {}).get("FileMetaInformationGroupLength")
    if isinstance(meta_length, int) and _SNIFF_BYTES + 12 + meta_length > size:
        return True  # 132 bytes of preamble and prefix, 12 of the group length element
    for tag in {max(ds.keys(), default=PIXEL_DATA), PIXEL_DATA}:
        elem = ds.get_item(tag, keep_deferred=True)
        if not isinstance(elem, RawDataElement) or elem.length == 0xFFFFFFFF:
            continue
        if elem.value is None:  # deferred
            if elem.value_tell + elem.length > size:
                return True
        elif len(elem.value) < elem.length:
            return True
    return False


# Transfer syntaxes whose pixels pydicom reads without a native decoder (deflate is zlib's,
# which holds no image codec). Every other one (JPEG, JPEG-LS, JPEG 2000, RLE, private ones)
# may reach a codec written in C.
NATIVE_FREE_SYNTAXES = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
    | {DeflatedExplicitVRLittleEndian}
)
_META_BYTES = 4096  # the File Meta Information of real files is a few hundred bytes


def may_need_native_decoder(path: Path) -> bool:
    """`native_decoder_needed` for the file at `path` (its first bytes only)."""
    with path.open("rb") as fh:
        return native_decoder_needed(fh.read(_META_BYTES))


def native_decoder_needed(head: bytes | memoryview) -> bool:
    """Whether checking this file may run a native image codec, from its first bytes alone:
    True for a Part 10 file whose transfer syntax is compressed or unknown, or whose header
    cannot be read here; False for an uncompressed or deflated one and for anything without
    the DICM prefix (a bare data set is uncompressed, and anything else is rejected unread)."""
    head = bytes(head[:_META_BYTES])
    if head[128:132] != b"DICM":
        return False
    ts = file_meta_values(head).get(0x0010)
    return ts is None or ts not in NATIVE_FREE_SYNTAXES


def file_meta_values(head: bytes | memoryview) -> dict[int, str]:
    """The text values of the File Meta Information after the DICM prefix (always explicit VR
    little endian, PS3.10 7.1), by element number: 0x0002 the SOP Class, 0x0003 the SOP
    Instance, 0x0010 the transfer syntax. Stops where `head` ends or group 0002 does: a value
    cut off is left out."""
    head = bytes(head)
    values: dict[int, str] = {}
    if head[128:132] != b"DICM":
        return values
    pos = 132
    while pos + 8 <= len(head):
        group, element, vr = struct.unpack_from("<HH2s", head, pos)
        if group != 0x0002:
            break
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            if pos + 12 > len(head):
                break
            length, pos = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, pos = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        value = head[pos : pos + length]
        if len(value) != length:
            break
        if vr in (b"UI", b"AE", b"SH", b"LO", b"CS"):
            values[element] = value.decode("ascii", "replace").strip("\0 ")
        pos += length
    return values


def plausible_bare_data_set(head: bytes, size: int) -> bool:
    """Could `head` start a data set without a Part 10 header? Elements come in ascending
    tag order (PS3.5 7.1) and every image holds SOP Class UID (0008,0016), so the first tag is
    in group 0002 to 0008; it must be followed by a VR (explicit VR, little or big endian) or
    by a length that fits the file (implicit VR little endian)."""
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, _element = struct.unpack(f"{order}HH", head[:4])
        if group % 2 or not 0x0002 <= group <= 0x0008:
            continue
        if head[4:6] in _VRS:
            return True
        if order == "<":
            length = struct.unpack("<I", head[4:8])[0]
            if length == 0xFFFFFFFF or length <= size - 8:
                return True
    return False


def _looks_like_dicom(ds: Dataset) -> bool:
    try:
        return "SOPClassUID" in ds and ("PixelData" in ds or "Modality" in ds)
    except Exception:
        return False
