"""Pixel data checks: the frame count, a native length, and that a compressed frame decodes
completely (its end marker, RLE segment lengths, JPEG 2000 by its codestream, then a decoder);
and the Pixel Data cleared of what no reader decodes before it is stored. The codestreams'
structure is `codestream`'s."""

import io
import math
import re
import struct
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile as PILImageFile
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets
from pydicom.pixels import get_decoder, pixel_array
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    RLELossless,
)
from rle.rle import decode_segment as rle_decode_segment

from portal.ingest.dicom import elements
from portal.ingest.dicom.codestream import (
    JPEG2000_SYNTAXES,
    JPEG_FAMILY_SYNTAXES,
    CodestreamError,
    blank_free_text,
    check_j2k_codestream,
    check_jpeg_markers,
    damaged,
    single_frame,
)
from portal.ingest.dicom.errors import Rejected

PIXEL_DATA = Tag(0x7FE0, 0x0010)
_WHOLE_NUMBER = re.compile(r"^\s*\+?\d{1,10}\s*$")


def number_of_frames(ds: Dataset) -> int:
    """NumberOfFrames (IS) as a count: absent or empty means one; anything but a whole number
    of at least one is rejected, since neither pydicom nor the worker can decode by it."""
    value = elements.get(ds, "NumberOfFrames")
    text = "" if value is None else str(value)
    if not text.strip():
        return 1
    if not _WHOLE_NUMBER.match(text) or int(text) < 1:
        raise Rejected("invalid NumberOfFrames (not a whole number of at least 1)")
    return int(text)


def check_pixels(
    ds: Dataset,
    ts: UID | None,
    geometry: tuple[int, int, int, int],
    load: Callable[[], bytes],
    *,
    sample_pixels: int,
) -> np.ndarray:
    """Raise Rejected unless the pixel data hold exactly one frame that decodes completely;
    return pixels for the usable-range check (`checks`), decoded once.

    `geometry` is (Rows, Columns, BitsAllocated, BitsStored); `load` returns the Pixel Data
    value (read once, by the caller's open file). Native pixels come back as a strided subsample
    of about `sample_pixels`, a JPEG 2000 frame at its checking resolution, any other
    compressed frame in full.
    """
    rows, cols, bits_allocated, bits_stored = geometry
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
        little = ts.is_little_endian if ts is not None else _read_little_endian(ds)
        return _native_sample(load(), geometry, little, _signed(ds), sample_pixels)
    value = load()
    try:
        # More than one frame in the offset tables would be stored beside the one we check.
        offsets = parse_basic_offsets(value)
        extended = len(ds.get("ExtendedOffsetTable", b"") or b"") // 8
    except Exception as exc:
        raise Rejected(damaged(ts, "its item structure cannot be read")) from exc
    if max(len(offsets), extended) > 1:
        raise Rejected(
            f"encapsulated pixel data holds {max(len(offsets), extended)} frames; "
            "only single-frame radiographs"
        )
    frame = single_frame(value, ts)
    if ts in JPEG2000_SYNTAXES:
        reduced = _j2k_reduced_pixels(frame, ts, rows, cols)
        if reduced is not None:
            return reduced
    elif ts in JPEG_FAMILY_SYNTAXES:
        check_jpeg_markers(frame, ts)
    elif ts == RLELossless:
        _check_rle_segments(frame, ts, rows * cols, bits_allocated // 8)
    return _decode_in_full(ds, ts, rows, cols)


def _check_rle_segments(frame: bytes, ts: UID, pixels: int, segments: int) -> None:
    """An RLE frame (PS3.5 Annex G) holds one segment per byte of a sample, each decoding to
    exactly Rows x Columns bytes: a header that says fewer or more rows than were encoded is
    refused here, before a decoder cuts the image or overruns its buffer.

    Each segment is counted by pylibjpeg-rle, and, where that disagrees, by reading its run
    headers (PS3.5 G.3.2), which is exact."""
    if len(frame) < 64:
        raise Rejected(damaged(ts, "no RLE header"))
    count, *offsets = struct.unpack_from("<16I", frame)
    if count != segments:
        raise Rejected(damaged(ts, f"{count} RLE segments where {segments} are expected"))
    bounds = [*offsets[:count], len(frame)]
    if bounds[0] != 64 or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise Rejected(damaged(ts, "its RLE segment offsets are out of order"))
    for start, end in zip(bounds, bounds[1:], strict=False):
        decoded = _fast_rle_segment_length(frame[start:end])
        if decoded != pixels:  # or a pad byte that pylibjpeg-rle counts: the exact walk decides
            decoded = _rle_segment_length(frame, start, end)
        if decoded != pixels:
            raise Rejected(
                damaged(ts, f"an RLE segment holds {decoded} bytes, not Rows x Columns {pixels}")
            )


def _fast_rle_segment_length(segment: bytes) -> int | None:
    """The segment's decoded length by pylibjpeg-rle (Rust; a 3-megapixel film's segment in
    under 0.1 s, where the walk below takes 0.35 s); None where it cannot tell."""
    try:
        return len(rle_decode_segment(segment))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a Rust panic is a BaseException
        return None


def _rle_segment_length(frame: bytes, pos: int, end: int) -> int:
    """How many bytes the PackBits segment frame[pos:end] decodes to (PS3.5 G.3.2). A final
    run cut by the segment's end counts for nothing: it is the pad byte to an even length, or
    damage that the length comparison then finds."""
    total = 0
    while pos < end:
        header = frame[pos]
        if header < 128:  # a literal run of header + 1 bytes
            if pos + 2 + header > end:
                break
            total += header + 1
            pos += header + 2
        elif header > 128:  # one byte replicated 257 - header times
            if pos + 2 > end:
                break
            total += 257 - header
            pos += 2
        else:  # -128: no operation
            pos += 1
    return total


# The order in which pydicom's decoding plugins are tried, of those installed for a syntax:
# pydicom's own order (the fast native ones first), except that CharLS, JPEG-LS's reference
# implementation, comes first: it refuses damaged streams that libjpeg decodes without a word.
_DECODER_ORDER = ("pyjpegls", "pylibjpeg", "pydicom", "pillow", "gdcm")
# Warnings raised from these packages during a decode mean the decoder met damage and
# recovered; pydicom's own (a header value that disagrees with the codestream) do not.
_DECODER_PACKAGES = ("libjpeg", "openjpeg", "rle", "jpeg_ls", "PIL", "pylibjpeg")


def _decode_in_full(ds: Dataset, ts: UID, rows: int, cols: int) -> np.ndarray:
    """Decode the frame at full resolution with each decoder pydicom has for `ts` in turn,
    until one succeeds: a decoder that fails is a reason to try the next, a decoder that warns
    (it recovered from an error) is damage. Nothing a decoder raises or warns is printed."""
    try:
        available = get_decoder(ts).available_plugins
    except NotImplementedError as exc:  # a syntax pydicom has no decoder for (MPEG, JPEG XL)
        raise Rejected(f"pixel data in {ts.name} cannot be decoded here") from exc
    plugins = sorted(available, key=lambda p: (_DECODER_ORDER + (p,)).index(p))
    if not plugins:
        raise Rejected(f"pixel data in {ts.name} cannot be decoded here (no decoder installed)")
    failure = ""
    # Pillow would fill a truncated frame with black where this is set (WeasyPrint's import
    # sets it for its whole process; documents.to_pdf sets it back): damage must raise.
    PILImageFile.LOAD_TRUNCATED_IMAGES = False
    for plugin in plugins:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pixels = pixel_array(ds, decoding_plugin=plugin)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a Rust decoder's panic is a BaseException
                failure = f"every decoder failed ({type(exc).__name__})"
                continue
        if any(_from_decoder(w.filename) for w in caught):
            raise Rejected(damaged(ts, "the decoder reported damage and recovered"))
        if pixels.shape != (rows, cols):
            raise Rejected(
                damaged(ts, f"it decodes to {'x'.join(map(str, pixels.shape))}, not {rows}x{cols}")
            )
        return pixels
    raise Rejected(damaged(ts, failure))


def _from_decoder(filename: str) -> bool:
    parts = re.split(r"[\\/]", filename)
    return any(package in parts for package in _DECODER_PACKAGES) and "pydicom" not in parts


def _signed(ds: Dataset) -> bool:
    return str(elements.get(ds, "PixelRepresentation", 0)).strip() == "1"


def _read_little_endian(ds: Dataset) -> bool:
    """A bare data set's byte order, as it was read."""
    return bool(getattr(ds, "original_encoding", (True, True))[1])


def _native_sample(
    value: bytes, geometry: tuple[int, int, int, int], little: bool, signed: bool, size: int
) -> np.ndarray:
    """About `size` of a native frame's pixels, every n-th of every n-th row, as the values
    stored: bits above BitsStored (overlays, junk) masked off, signed values sign-extended.
    A view and one small copy: this is on the path of every uncompressed file."""
    rows, cols, bits_allocated, bits_stored = geometry
    dtype = np.dtype("u1") if bits_allocated == 8 else np.dtype("<u2" if little else ">u2")
    frame = np.frombuffer(value, dtype, count=rows * cols).reshape(rows, cols)
    step = max(1, math.isqrt(rows * cols // max(1, size)))
    sample = frame[::step, ::step].astype(np.int32)
    if bits_stored < bits_allocated:
        sample &= (1 << bits_stored) - 1
    if signed:
        sample[sample >= 1 << (bits_stored - 1)] -= 1 << bits_stored
    return sample


def pixel_data_length(ds: Dataset) -> int:
    """The Pixel Data value's length, without reading a deferred value."""
    elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    value = getattr(elem, "value", None)
    if value is None:
        return 0 if elem is None or elem.length == 0xFFFFFFFF else int(elem.length)
    return len(value)


# A JPEG 2000 film is decoded at about this size (at most, by halving) to prove that its
# codestream decodes: a full-resolution decode costs ~50 times more, and is the worker's.
J2K_CHECK_PIXELS = 256


def _j2k_reduced_pixels(frame: bytes, ts: UID, rows: int, cols: int) -> np.ndarray | None:
    """Check a JPEG 2000 frame by its structure and decode it at reduced resolution.

    Raises Rejected for a codestream that cannot be valid (not JPEG 2000, truncated, another
    geometry, more than one component). Returns None where the reduced decode fails or gives
    another size, so that the caller decodes at full resolution with pydicom's decoders: a
    valid film that Pillow cannot reduce is not refused for it.
    """
    try:
        levels = check_j2k_codestream(frame, rows=rows, cols=cols)
    except CodestreamError as exc:
        raise Rejected(damaged(ts, str(exc))) from exc
    reduce = min(levels, max(0, math.ceil(math.log2(max(rows, cols) / J2K_CHECK_PIXELS))))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoded = _decode_j2k_reduced(frame, reduce, rows=rows, cols=cols)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        return None
    expected = (math.ceil(rows / (1 << reduce)), math.ceil(cols / (1 << reduce)))
    if caught or decoded.shape != expected:
        return None
    return decoded


class _ReducedDecodeUnavailable(Exception):
    pass


def clean_pixel_data(ds: Dataset, ts: UID | None) -> None:
    """Leave in the Pixel Data value only what a reader decodes, so that nothing a sender hid
    there is stored: a compressed frame's free text blanked (`blank_free_text`); in native
    pixels, the bits above BitsStored (a retired embedded overlay's, or anything) set as every
    reader takes them, zero or a signed value's sign (`_native_sample` reads them so), and the
    pad byte zero. Lengths never change, and the pixels decode exactly as sent."""
    if "PixelData" not in ds:
        return
    value = ds.PixelData
    if ts is not None and ts.is_encapsulated:
        clean = blank_free_text(value, ts)
    else:
        little = ts.is_little_endian if ts is not None else _read_little_endian(ds)
        clean = _clear_unused_bits(value, ds, little=little)
    if clean is not value:
        ds.PixelData = clean


def _clear_unused_bits(value: bytes, ds: Dataset, *, little: bool) -> bytes:
    """One native frame (checked before) with its bits above BitsStored as read; the value
    itself where they already are. Two passes without a copy on the usual file."""
    rows, cols = int(elements.get(ds, "Rows")), int(elements.get(ds, "Columns"))
    allocated = int(elements.get(ds, "BitsAllocated"))
    stored = int(elements.get(ds, "BitsStored", allocated) or allocated)  # as `checks` reads it
    signed = _signed(ds)
    dtype = np.dtype(f"{'<' if little else '>'}{'i' if signed else 'u'}{allocated // 8}")
    frame = np.frombuffer(value, dtype, count=rows * cols)
    pad = value[frame.nbytes :]
    low, high = (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if signed else (0, ~(-1 << stored))
    if stored < allocated and (frame.min() < low or frame.max() > high):
        shift = allocated - stored  # up and back down: the high bits go, or become the sign
        return ((frame << shift) >> shift).astype(dtype).tobytes() + bytes(len(pad))
    return value[: frame.nbytes] + bytes(len(pad)) if pad.strip(b"\0") else value


def _decode_j2k_reduced(frame: bytes, reduce: int, *, rows: int, cols: int) -> np.ndarray:
    """Decode `frame` at 1 / 2**reduce of its resolution with Pillow's OpenJPEG.

    Pillow rounds the reduced size to nearest where OpenJPEG rounds up (Pillow issue 4343's
    property), so the tile is set to OpenJPEG's size here."""
    PILImageFile.LOAD_TRUNCATED_IMAGES = False  # as in _decode_in_full: damage must raise
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
    return np.asarray(image)
