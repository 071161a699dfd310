"""Reading and checking one DICOM file: is it a radiograph we can use, and how old was the child?

Pure functions over pydicom datasets, so that ingest, tests and benchmarks share them. Every
rejection is a `Rejected` with a reason a site uploader can act on. Tag values may be PHI, so a
reason quotes one only when it is a defined term of the standard (a modality, a photometric
interpretation, a transfer syntax) or a number the check is about; any other value is described.
"""

import datetime as dt
import io
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from PIL import Image as PILImage
from PIL import ImageFile as PILImageFile
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, parse_basic_offsets
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

# pydicom's warnings about invalid values quote the value, which may be PHI: we validate what
# we use ourselves and keep pydicom quiet.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

RADIOGRAPH_MODALITIES = {"CR", "DX"}
GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}
# Defined terms of Modality (PS3.3 C.7.3.1.1.1, current and retired) and of Photometric
# Interpretation (PS3.3 C.7.6.3.1.2): only these are ever quoted in a reason.
_MODALITY_TERMS = (
    "ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DMS DG DOC DX ECG EEG EMG EOG EPS ES FID GM "
    "HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS "
    "OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN "
    "RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC "
    "AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF"
)
MODALITY_TERMS = frozenset(_MODALITY_TERMS.split())
PHOTOMETRIC_TERMS = frozenset(
    {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "XYB"}
    | {"YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"}
)
DAYS_PER_MONTH = 30.4375
DAYS_PER_YEAR = 365.25
MAX_AGE_YEARS = 18
_PATIENT_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_UNIT_DAYS = {"D": 1, "W": 7, "M": DAYS_PER_MONTH, "Y": DAYS_PER_YEAR}
_AGE_UNIT_RESOLUTION = {"D": 1, "W": 7, "M": 30, "Y": 365}


class Rejected(Exception):
    """A file that ingest refuses, with the reason shown in the upload report."""


@dataclass(frozen=True)
class Age:
    days: int
    source: str  # "birthdate" | "patient_age"
    resolution_days: int


@dataclass(frozen=True)
class Limits:
    min_dimension: int = 64
    max_dimension: int = 8192
    max_aspect_ratio: float = 4.0


PIXEL_DATA = Tag(0x7FE0, 0x0010)
NOT_DICOM = "not a DICOM file (no DICM prefix and not parseable)"


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
    try:
        ds = pydicom.dcmread(fh, force=not has_prefix, defer_size=DEFER_BYTES)
        if transfer_syntax(ds) == DeflatedExplicitVRLittleEndian:
            # Deferred values would be read back from the deflated file at inflated offsets.
            fh.seek(0)
            ds = pydicom.dcmread(fh, force=not has_prefix)
    except InvalidDicomError as exc:
        raise Rejected(NOT_DICOM) from exc
    except (EOFError, OSError) as exc:
        raise Rejected("truncated file: it ends inside a DICOM element") from exc
    except Exception as exc:
        reason = f"unreadable DICOM ({type(exc).__name__})" if has_prefix else NOT_DICOM
        raise Rejected(reason) from exc
    if not has_prefix and not _looks_like_dicom(ds):
        raise Rejected(NOT_DICOM)
    pixels = ds.get_item(PIXEL_DATA, keep_deferred=True)
    deferred = getattr(pixels, "value", b"") is None and pixels.length != 0xFFFFFFFF
    if deferred and pixels.value_tell + pixels.length > size:
        raise Rejected("truncated file: it ends inside a DICOM element")
    return ds


# Transfer syntaxes whose pixels pydicom reads without a native decoder (deflate is zlib's,
# which holds no image codec). Every other one (JPEG, JPEG-LS, JPEG 2000, RLE, private ones)
# may reach a codec written in C.
NATIVE_FREE_SYNTAXES = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
    | {DeflatedExplicitVRLittleEndian}
)
_META_BYTES = 4096  # the File Meta Information of real files is a few hundred bytes


def may_need_native_decoder(path: Path) -> bool:
    """Whether checking this file may run a native image codec, from its header alone: True
    for a Part 10 file whose transfer syntax is compressed or unknown, or whose header cannot
    be read here; False for an uncompressed or deflated one and for anything without the DICM
    prefix (a bare data set is uncompressed, and anything else is rejected unread)."""
    with path.open("rb") as fh:
        head = fh.read(_META_BYTES)
    if head[128:132] != b"DICM":
        return False
    ts = _meta_transfer_syntax(head)
    return ts is None or ts not in NATIVE_FREE_SYNTAXES


def _meta_transfer_syntax(head: bytes) -> str | None:
    """Transfer Syntax UID (0002,0010) from the File Meta Information after the DICM prefix
    (always explicit VR little endian, PS3.10 7.1); None when it cannot be found in `head`."""
    pos = 132
    while pos + 8 <= len(head):
        group, element, vr = struct.unpack_from("<HH2s", head, pos)
        if group != 0x0002:
            return None
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            if pos + 12 > len(head):
                return None
            length, pos = struct.unpack_from("<I", head, pos + 8)[0], pos + 12
        else:
            length, pos = struct.unpack_from("<H", head, pos + 6)[0], pos + 8
        if element == 0x0010:
            value = head[pos : pos + length]
            if len(value) != length:
                return None
            return value.decode("ascii", "replace").strip("\0 ")
        pos += length
    return None


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


def check_radiograph(ds: Dataset, limits: Limits) -> None:
    """Raise Rejected unless `ds` is a single-frame grayscale CR/DX image whose pixels decode."""
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if not modality:
        raise Rejected("no Modality attribute; expected CR or DX")
    if modality not in RADIOGRAPH_MODALITIES:
        named = modality if modality in MODALITY_TERMS else "(not a defined term)"
        raise Rejected(f"modality {named} is not a radiograph (expected CR or DX)")
    if "SOPInstanceUID" not in ds or not str(ds.SOPInstanceUID).strip():
        raise Rejected("no SOPInstanceUID")
    if "PixelData" not in ds:
        raise Rejected("no pixel data")
    ts = transfer_syntax(ds)
    if ts is not None and not ts.is_transfer_syntax:
        raise Rejected("unknown transfer syntax (not one of the standard's); cannot decode it")
    frames = number_of_frames(ds)
    if frames > 1:
        raise Rejected(f"multi-frame image ({frames} frames); only single-frame radiographs")
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = _int(ds.get("SamplesPerPixel", 1), default=1)
    if not photometric:
        raise Rejected("no PhotometricInterpretation; expected MONOCHROME1 or MONOCHROME2")
    if photometric not in PHOTOMETRIC_TERMS:
        raise Rejected(
            "PhotometricInterpretation is not a defined term; expected MONOCHROME1 or MONOCHROME2"
        )
    if samples != 1 or photometric not in GRAYSCALE:
        raise Rejected(
            f"colour image (PhotometricInterpretation {photometric}, "
            f"{samples} samples per pixel); only MONOCHROME1 or MONOCHROME2"
        )
    bits_allocated = _int(ds.get("BitsAllocated"), default=0)
    bits_stored = _int(ds.get("BitsStored", bits_allocated), default=bits_allocated)
    if bits_allocated not in (8, 16) or not 8 <= bits_stored <= 16:
        raise Rejected(
            f"unsupported bit depth ({bits_stored} stored in {bits_allocated}); 8 to 16 bits only"
        )
    rows, cols = _int(ds.get("Rows"), default=0), _int(ds.get("Columns"), default=0)
    ratio = max(rows, cols) / max(1, min(rows, cols))
    if (
        min(rows, cols) < limits.min_dimension
        or max(rows, cols) > limits.max_dimension
        or ratio > limits.max_aspect_ratio
    ):
        raise Rejected(
            f"absurd dimensions {rows}x{cols} (each side {limits.min_dimension} to "
            f"{limits.max_dimension} pixels, aspect ratio at most {limits.max_aspect_ratio:g})"
        )
    _check_pixels_decode(ds, ts, rows, cols, bits_allocated)


def transfer_syntax(ds: Dataset) -> UID | None:
    """The file's transfer syntax; None for a bare data set (no Part 10 header)."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(ts).strip()) if ts else None


_WHOLE_NUMBER = re.compile(r"^\s*\+?\d{1,10}\s*$")


def number_of_frames(ds: Dataset) -> int:
    """NumberOfFrames (IS) as a count: absent or empty means one; anything but a whole number
    of at least one is rejected, since neither pydicom nor the worker can decode by it."""
    value = ds.get("NumberOfFrames")
    text = "" if value is None else str(value)
    if not text.strip():
        return 1
    if not _WHOLE_NUMBER.match(text) or int(text) < 1:
        raise Rejected("invalid NumberOfFrames (not a whole number of at least 1)")
    return int(text)


def _check_pixels_decode(
    ds: Dataset, ts: UID | None, rows: int, cols: int, bits_allocated: int
) -> None:
    if ts is None or not ts.is_compressed:
        # Native pixels decode exactly when there is exactly one frame of them (plus the pad
        # byte to an even length). The declared length is checked before the value is read:
        # a header that lies about its geometry costs nothing. More than one frame would
        # decode as several images.
        expected = rows * cols * (bits_allocated // 8)
        actual = pixel_data_length(ds)
        if actual < expected:
            raise Rejected(f"truncated pixel data ({actual} of {expected} bytes)")
        if actual not in (expected, expected + expected % 2):
            raise Rejected(
                f"pixel data length ({actual} bytes) does not match one frame of "
                f"{rows}x{cols} pixels of {bits_allocated} bits ({expected} bytes)"
            )
        return
    try:
        # More than one frame in the offset tables would be stored beside the one we check.
        offsets = parse_basic_offsets(ds.PixelData)
        extended = len(ds.get("ExtendedOffsetTable", b"") or b"") // 8
    except Exception as exc:
        raise Rejected(f"pixel data does not decode ({ts.name}: {type(exc).__name__})") from exc
    if max(len(offsets), extended) > 1:
        raise Rejected(
            f"encapsulated pixel data holds {max(len(offsets), extended)} frames; "
            "only single-frame radiographs"
        )
    if ts in JPEG2000_SYNTAXES and _j2k_checks_without_full_decode(ds, ts, rows, cols):
        return
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise Rejected(f"pixel data does not decode ({ts.name}: {type(exc).__name__})") from exc
    if pixels.shape != (rows, cols):
        raise Rejected(f"pixel data decodes to {pixels.shape}, not {rows}x{cols}")


def pixel_data_length(ds: Dataset) -> int:
    """The Pixel Data value's length, without reading a deferred value."""
    elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    value = getattr(elem, "value", None)
    if value is None:
        return 0 if elem is None or elem.length == 0xFFFFFFFF else int(elem.length)
    return len(value)


JPEG2000_SYNTAXES = frozenset(
    UID(u) for u in (JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)
)
# A JPEG 2000 film is decoded at about this size (at most, by halving) to prove that its
# codestream decodes: a full-resolution decode costs ~50 times more, and is the worker's.
J2K_CHECK_PIXELS = 256


def _j2k_checks_without_full_decode(ds: Dataset, ts: UID, rows: int, cols: int) -> bool:
    """Check a JPEG 2000 frame by its structure and a reduced-resolution decode.

    Raises Rejected for a codestream that cannot be valid (not JPEG 2000, truncated, another
    geometry, more than one component). Returns False where the reduced decode is not
    possible here, so that the caller decodes at full resolution instead.
    """
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as exc:
        raise Rejected(f"pixel data does not decode ({ts.name}: {type(exc).__name__})") from exc
    try:
        levels = check_j2k_codestream(bytes(frame), rows=rows, cols=cols)
    except CodestreamError as exc:
        raise Rejected(f"pixel data does not decode ({ts.name}: {exc})") from exc
    reduce = min(levels, max(0, math.ceil(math.log2(max(rows, cols) / J2K_CHECK_PIXELS))))
    try:
        decoded = _decode_j2k_reduced(bytes(frame), reduce, rows=rows, cols=cols)
    except _ReducedDecodeUnavailable:
        return False
    except Exception as exc:
        raise Rejected(f"pixel data does not decode ({ts.name}: {type(exc).__name__})") from exc
    expected = (math.ceil(rows / (1 << reduce)), math.ceil(cols / (1 << reduce)))
    if decoded != expected:
        raise Rejected(f"pixel data decodes to {decoded}, not {rows}x{cols}")
    return True


class _ReducedDecodeUnavailable(Exception):
    pass


_SOC, _SIZ, _COD, _SOT, _EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF90, 0xFFD9


def check_j2k_codestream(frame: bytes, *, rows: int, cols: int) -> int:
    """Walk a JPEG 2000 codestream's markers (ITU-T T.800 Annex A): SOC and SIZ first, the
    main header's marker segments, every tile-part by its length, then EOC. Returns the
    number of wavelet decomposition levels (COD). Reads headers only, never the coded data.

    Raises CodestreamError for a codestream that cannot be valid, and Rejected for a valid one
    that is not a single-component image of `rows` x `cols`."""
    if len(frame) < 4 or struct.unpack(">HH", frame[:4]) != (_SOC, _SIZ):
        raise CodestreamError("it does not start with SOC and SIZ")
    pos, levels, siz = 2, None, None
    try:
        while True:  # the main header: marker segments up to the first tile-part
            marker, length = struct.unpack(">HH", frame[pos : pos + 4])
            if marker == _SOT:
                break
            if marker >> 8 != 0xFF or length < 2 or pos + 2 + length > len(frame):
                raise CodestreamError("a damaged main header")
            segment = frame[pos + 4 : pos + 2 + length]
            if marker == _SIZ:
                siz = struct.unpack_from(">2x8IH", segment)
            elif marker == _COD:
                levels = segment[5]
            pos += 2 + length
        while pos + 2 <= len(frame) and struct.unpack(">H", frame[pos : pos + 2])[0] == _SOT:
            psot = struct.unpack(">I", frame[pos + 6 : pos + 10])[0]
            # Psot 0: the last tile-part, running to the EOC marker (A.4.2).
            pos = frame.rfind(b"\xff\xd9") if psot == 0 else pos + psot
    except (struct.error, IndexError) as exc:
        raise CodestreamError("it ends inside a marker segment") from exc
    if siz is None or levels is None:
        raise CodestreamError("no SIZ or COD marker segment")
    if pos + 2 > len(frame) or struct.unpack(">H", frame[pos : pos + 2])[0] != _EOC:
        raise CodestreamError("truncated or damaged: its tile-parts do not end at EOC")
    padding = frame[pos + 2 :]  # a fragment is padded to an even length; some pad with zeros
    if len(padding) > 1 and padding.strip(b"\0"):
        raise CodestreamError("data after the end of the codestream")
    xsiz, ysiz, x0, y0, *_tiles, components = siz
    if (ysiz - y0, xsiz - x0) != (rows, cols):
        raise Rejected(f"pixel data decodes to ({ysiz - y0}, {xsiz - x0}), not {rows}x{cols}")
    if components != 1:
        raise Rejected(f"pixel data holds {components} components; only grayscale radiographs")
    return levels


class CodestreamError(ValueError):
    """A JPEG 2000 codestream whose structure cannot be valid."""


def _decode_j2k_reduced(frame: bytes, reduce: int, *, rows: int, cols: int) -> tuple[int, int]:
    """Decode `frame` at 1 / 2**reduce of its resolution with Pillow's OpenJPEG; the shape.

    Pillow rounds the reduced size to nearest where OpenJPEG rounds up (Pillow issue 4343's
    property), so the tile is set to OpenJPEG's size here."""
    try:
        image = PILImage.open(io.BytesIO(frame), formats=["JPEG2000"])
    except Exception as exc:
        raise _ReducedDecodeUnavailable from exc
    size = (math.ceil(cols / (1 << reduce)), math.ceil(rows / (1 << reduce)))
    tile = image.tile[0] if len(image.tile) == 1 else None
    args = tile.args if tile is not None else None
    if not isinstance(args, tuple) or len(args) != 5 or image.size != (cols, rows):
        raise _ReducedDecodeUnavailable
    image._size = size
    image.tile = [
        PILImageFile._Tile(
            tile.codec_name, (0, 0, *size), tile.offset, (args[0], reduce, 0, args[3], args[4])
        )
    ]
    image.load()
    return image.size[1], image.size[0]


def _int(value: object, *, default: int) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def parse_date(value: object) -> dt.date | None:
    """DA values as real files write them: YYYYMMDD, or the old ACR-NEMA YYYY.MM.DD."""
    text = re.sub(r"[.\-/\s]", "", str(value or ""))[:8]
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def compute_age(ds: Dataset) -> Age:
    """Age at the examination: study (or acquisition) date minus birth date, else PatientAge."""
    birth_raw = ds.get("PatientBirthDate")
    birth = parse_date(birth_raw)
    exam = parse_date(ds.get("StudyDate")) or parse_date(ds.get("AcquisitionDate"))
    if birth is not None and exam is not None:
        days = (exam - birth).days
        if days < 0:
            raise Rejected("negative age: the study date is before the birth date")
        if exam >= _add_years(birth, MAX_AGE_YEARS):
            raise Rejected(
                f"age {days / DAYS_PER_YEAR:.1f} years is out of scope (18 years or more)"
            )
        return Age(days=days, source="birthdate", resolution_days=1)
    age = _patient_age(ds.get("PatientAge"))
    if age is not None:
        return age
    if birth is None and str(birth_raw or "").strip():
        problem = "the birth date cannot be parsed"
    elif birth is not None:
        problem = "there is a birth date but no study or acquisition date"
    else:
        problem = "no birth date"
    patient_age = str(ds.get("PatientAge") or "").strip()
    detail = "PatientAge cannot be parsed" if patient_age else "no PatientAge"
    raise Rejected(f"missing age label: {problem} and {detail}")


def _patient_age(value: object) -> Age | None:
    match = _PATIENT_AGE.match(str(value or ""))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    exact_days = number * _AGE_UNIT_DAYS[unit]
    # Compared before rounding, in the age's own unit: 216M is 6574.5 days, which rounds
    # (half to even) to 6574, a day short of 18 years, though it is 18 years exactly.
    if exact_days >= MAX_AGE_YEARS * DAYS_PER_YEAR:
        raise Rejected(
            f"age {exact_days / DAYS_PER_YEAR:.1f} years is out of scope (18 years or more)"
        )
    days = round(exact_days)
    return Age(days=days, source="patient_age", resolution_days=_AGE_UNIT_RESOLUTION[unit])


def normalise_sex(value: object) -> str:
    sex = str(value or "").strip().upper()[:1]
    return sex if sex in {"M", "F"} else "O"


def format_patient_age(days: int) -> str:
    """The DICOM AS string closest to an age in days (nnnD up to 999 days, then months, years)."""
    if days < 1000:
        return f"{days:03d}D"
    months = int(days // DAYS_PER_MONTH)
    if months < 1000:
        return f"{months:03d}M"
    return f"{int(days // DAYS_PER_YEAR):03d}Y"
