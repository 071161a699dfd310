"""Pixel data checks: the frame count, a native length, decoding (JPEG 2000 by its codestream)."""

import io
import math
import re
import struct

from PIL import Image as PILImage
from PIL import ImageFile as PILImageFile
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, parse_basic_offsets
from pydicom.tag import Tag
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
)

from portal.ingest.dicom.errors import Rejected

PIXEL_DATA = Tag(0x7FE0, 0x0010)
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
