"""Pixel data checks: the frame count, a native length, and that a compressed frame decodes
completely (its end marker, RLE segment lengths, JPEG 2000 by its codestream, then a decoder)."""

import io
import math
import re
import struct
import warnings
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile as PILImageFile
from pydicom.dataset import Dataset
from pydicom.encaps import parse_basic_offsets
from pydicom.pixels import get_decoder, pixel_array
from pydicom.tag import Tag
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)
from rle.rle import decode_segment as rle_decode_segment

from portal.ingest.dicom import elements
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
        raise Rejected(_damaged(ts, "its item structure cannot be read")) from exc
    if max(len(offsets), extended) > 1:
        raise Rejected(
            f"encapsulated pixel data holds {max(len(offsets), extended)} frames; "
            "only single-frame radiographs"
        )
    frame = _single_frame(value, ts)
    if ts in JPEG2000_SYNTAXES:
        reduced = _j2k_reduced_pixels(frame, ts, rows, cols)
        if reduced is not None:
            return reduced
    elif ts in JPEG_FAMILY_SYNTAXES:
        _check_jpeg_markers(frame, ts)
    elif ts == RLELossless:
        _check_rle_segments(frame, ts, rows * cols, bits_allocated // 8)
    return _decode_in_full(ds, ts, rows, cols)


DAMAGED = "damaged or truncated pixel data"


def _damaged(ts: UID, detail: str) -> str:
    """The reason for a frame that does not decode completely: the syntax, then what is wrong."""
    return f"{DAMAGED} ({ts.name}: {detail})"


def _single_frame(value: bytes, ts: UID) -> bytes:
    """The one frame of encapsulated pixel data, its fragments joined."""
    return b"".join(value[start:end] for start, end in _fragments(value, ts))


def _fragments(value: bytes, ts: UID) -> list[tuple[int, int]]:
    """Where each fragment's data lie in an encapsulated value (the basic offset table left
    out). The items must fill the value exactly (PS3.5 A.4): anything else is a file cut
    inside its pixel data."""
    pos, fragments = 0, []
    while pos + 8 <= len(value):
        tag, length = struct.unpack_from("<II", value, pos)
        if tag != 0xE000FFFE or length == 0xFFFFFFFF:
            break
        if pos + 8 + length > len(value):
            raise Rejected(_damaged(ts, "it ends inside a fragment"))
        if pos:  # the first item is the basic offset table
            fragments.append((pos + 8, pos + 8 + length))
        pos += 8 + length
    if pos != len(value) or not fragments:
        raise Rejected(_damaged(ts, "its fragments do not fill the pixel data"))
    return fragments


JPEG_FAMILY_SYNTAXES = frozenset(UID(u) for u in JPEGTransferSyntaxes + JPEGLSTransferSyntaxes)
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"


def _check_jpeg_markers(frame: bytes, ts: UID) -> None:
    """A JPEG or JPEG-LS frame starts with SOI and ends with EOI (ITU-T T.81 B.2.1, T.87),
    before at most the one byte that pads a fragment to an even length (PS3.5 A.4). A cut
    codestream has no EOI, and the decoders would fill the missing rows without a word."""
    if not frame.startswith(_SOI):
        raise Rejected(_damaged(ts, "it does not start with the SOI marker"))
    if not (frame.endswith(_EOI) or (len(frame) % 2 == 0 and frame[-3:-1] == _EOI)):
        raise Rejected(_damaged(ts, "the codestream does not end with its EOI marker"))


def _check_rle_segments(frame: bytes, ts: UID, pixels: int, segments: int) -> None:
    """An RLE frame (PS3.5 Annex G) holds one segment per byte of a sample, each decoding to
    exactly Rows x Columns bytes: a header that says fewer or more rows than were encoded is
    refused here, before a decoder cuts the image or overruns its buffer.

    Each segment is counted by pylibjpeg-rle, and, where that disagrees, by reading its run
    headers (PS3.5 G.3.2), which is exact."""
    if len(frame) < 64:
        raise Rejected(_damaged(ts, "no RLE header"))
    count, *offsets = struct.unpack_from("<16I", frame)
    if count != segments:
        raise Rejected(_damaged(ts, f"{count} RLE segments where {segments} are expected"))
    bounds = [*offsets[:count], len(frame)]
    if bounds[0] != 64 or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise Rejected(_damaged(ts, "its RLE segment offsets are out of order"))
    for start, end in zip(bounds, bounds[1:], strict=False):
        decoded = _fast_rle_segment_length(frame[start:end])
        if decoded != pixels:  # or a pad byte that pylibjpeg-rle counts: the exact walk decides
            decoded = _rle_segment_length(frame, start, end)
        if decoded != pixels:
            raise Rejected(
                _damaged(ts, f"an RLE segment holds {decoded} bytes, not Rows x Columns {pixels}")
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
            raise Rejected(_damaged(ts, "the decoder reported damage and recovered"))
        if pixels.shape != (rows, cols):
            raise Rejected(
                _damaged(ts, f"it decodes to {'x'.join(map(str, pixels.shape))}, not {rows}x{cols}")
            )
        return pixels
    raise Rejected(_damaged(ts, failure))


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


JPEG2000_SYNTAXES = frozenset(
    UID(u) for u in (JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)
)
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
        raise Rejected(_damaged(ts, str(exc))) from exc
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


_SOC, _SIZ, _COD, _COM, _SOT, _SOD, _EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF64, 0xFF90, 0xFF93, 0xFFD9


def check_j2k_codestream(frame: bytes, *, rows: int, cols: int) -> int:
    """Walk a JPEG 2000 codestream's headers (`_j2k_segments`). Returns the number of wavelet
    decomposition levels (COD).

    Raises CodestreamError for a codestream that cannot be valid, and Rejected for a valid one
    that is not a single-component image of `rows` x `cols`."""
    levels, siz = None, None
    try:
        for marker, start, end in _j2k_segments(frame):
            if marker == _SIZ:
                siz = struct.unpack_from(">2x8IH", frame[start:end])
            elif marker == _COD and levels is None:  # the main header's, before any tile-part's
                levels = frame[start:end][5]
    except (struct.error, IndexError) as exc:
        raise CodestreamError("it ends inside a marker segment") from exc
    if siz is None or levels is None:
        raise CodestreamError("no SIZ or COD marker segment")
    xsiz, ysiz, x0, y0, *_tiles, components = siz
    if (ysiz - y0, xsiz - x0) != (rows, cols):
        raise Rejected(f"pixel data decodes to ({ysiz - y0}, {xsiz - x0}), not {rows}x{cols}")
    if components != 1:
        raise Rejected(f"pixel data holds {components} components; only grayscale radiographs")
    return levels


def _j2k_segments(frame: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start of its parameters, end) of each marker segment of a JPEG 2000 codestream
    (ITU-T T.800 Annex A): SOC and SIZ first, the main header up to the first tile-part, each
    tile-part's header up to SOD, the tile-parts by their lengths, then EOC. Reads headers
    only, never the coded data; raises CodestreamError where the structure cannot be valid."""
    if len(frame) < 4 or struct.unpack(">HH", frame[:4]) != (_SOC, _SIZ):
        raise CodestreamError("it does not start with SOC and SIZ")
    pos = 2
    try:
        while True:  # the main header: marker segments up to the first tile-part
            marker, length = struct.unpack(">HH", frame[pos : pos + 4])
            if marker == _SOT:
                break
            if marker >> 8 != 0xFF or length < 2 or pos + 2 + length > len(frame):
                raise CodestreamError("a damaged main header")
            yield marker, pos + 4, pos + 2 + length
            pos += 2 + length
        while pos + 2 <= len(frame) and struct.unpack(">H", frame[pos : pos + 2])[0] == _SOT:
            psot = struct.unpack(">I", frame[pos + 6 : pos + 10])[0]
            # Psot 0: the last tile-part, running to the EOC marker (A.4.2).
            end = frame.rfind(b"\xff\xd9") if psot == 0 else pos + psot
            at = pos + 2 + struct.unpack(">H", frame[pos + 2 : pos + 4])[0]
            while True:  # the tile-part's header, after its SOT segment, up to SOD
                if end <= pos or at + 2 > end:
                    raise CodestreamError("a damaged tile-part header")
                marker = struct.unpack(">H", frame[at : at + 2])[0]
                if marker == _SOD:
                    break
                length = struct.unpack(">H", frame[at + 2 : at + 4])[0]
                if marker >> 8 != 0xFF or length < 2 or at + 2 + length > end:
                    raise CodestreamError("a damaged tile-part header")
                yield marker, at + 4, at + 2 + length
                at += 2 + length
            pos = end
    except (struct.error, IndexError) as exc:
        raise CodestreamError("it ends inside a marker segment") from exc
    if pos + 2 > len(frame) or struct.unpack(">H", frame[pos : pos + 2])[0] != _EOC:
        raise CodestreamError("truncated or damaged: its tile-parts do not end at EOC")
    padding = frame[pos + 2 :]  # a fragment is padded to an even length; some pad with zeros
    if len(padding) > 1 and padding.strip(b"\0"):
        raise CodestreamError("data after the end of the codestream")


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


# Where a JPEG scan's coded data end: the next marker. In the coded data 0xFF 0x00 is a
# stuffed 0xFF and RSTn markers belong to the scan (ITU-T T.81 B.1.1.2, F.1.2.3); in JPEG-LS
# the byte after 0xFF has its high bit stuffed to 0 (T.87 A.1).
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_LS_SCAN_END = re.compile(rb"\xff[\x80-\xcf\xd8-\xff]")
_JPEG_LS_SYNTAXES = frozenset(UID(u) for u in JPEGLSTransferSyntaxes)


def free_text_spans(frame: bytes, ts: UID) -> list[tuple[int, int]]:
    """Where a compressed frame holds bytes that no decoder reads and a sender may fill with
    anything (a comment, EXIF's names and dates, a thumbnail): the parameters of JPEG and
    JPEG-LS COM and APPn segments (T.81 B.2.4.5-6, T.87 C.2.4), the text of JPEG 2000 COM
    segments in the main and tile-part headers (T.800 A.9.2), and the RLE header's unused
    segment offsets (zero, PS3.5 G.5). Only grayscale frames are accepted, so no APPn segment
    decides their colours. Raises CodestreamError where the markers cannot be walked."""
    if ts == RLELossless:  # 64 bytes: the number of segments and 15 offsets (checked before)
        return [(4 + 4 * int.from_bytes(frame[:4], "little"), 64)]
    if ts in JPEG2000_SYNTAXES:
        # After Rcom, the registration (text or binary), which stays.
        return [(start + 2, end) for marker, start, end in _j2k_segments(frame) if marker == _COM]
    if ts not in JPEG_FAMILY_SYNTAXES:
        return []
    scan_end = _JPEG_LS_SCAN_END if ts in _JPEG_LS_SYNTAXES else _JPEG_SCAN_END
    spans, pos, size = [], 2, len(frame)  # after SOI (checked before)
    while True:
        if pos + 2 > size or frame[pos] != 0xFF:
            raise CodestreamError("no marker where one must begin")
        while pos + 2 < size and frame[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = frame[pos + 1]
        if marker == 0xD9:  # EOI
            return spans
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM and RSTn have no parameters
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(frame[pos + 2 : pos + 4], "big")
        if marker == 0xD8 or end < pos + 4 or end > size:
            raise CodestreamError("a damaged marker segment")
        if marker == 0xFE or 0xE0 <= marker <= 0xEF:
            spans.append((pos + 4, end))
        pos = end
        if marker == 0xDA:  # SOS: the coded data run to the next marker
            found = scan_end.search(frame, pos)
            if found is None:
                raise CodestreamError("a scan does not end with a marker")
            pos = found.start()


def blank_free_text(value: bytes, ts: UID) -> bytes:
    """Encapsulated pixel data of one frame with its `free_text_spans` set to zero bytes. Every
    length stays as it was (fragments, offset tables, segments), and no decoder reads those
    bytes, so the pixels decode exactly as before. The value itself where nothing is blanked."""
    if ts not in JPEG2000_SYNTAXES and ts not in JPEG_FAMILY_SYNTAXES and ts != RLELossless:
        return value
    fragments = _fragments(value, ts)
    frame = b"".join(value[a:b] for a, b in fragments)
    try:
        spans = [(a, b) for a, b in free_text_spans(frame, ts) if frame[a:b].strip(b"\0")]
    except CodestreamError as exc:
        raise Rejected(_damaged(ts, str(exc))) from exc
    if not spans:
        return value
    blanked, offset = bytearray(value), 0  # offset: where each fragment begins in the frame
    for start, end in fragments:
        for low, high in spans:
            low, high = max(low - offset, 0), min(high - offset, end - start)
            if low < high:
                blanked[start + low : start + high] = bytes(high - low)
        offset += end - start
    return bytes(blanked)


class CodestreamError(ValueError):
    """A JPEG 2000 codestream whose structure cannot be valid."""


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
