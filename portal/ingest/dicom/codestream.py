"""The structure of encapsulated pixel data and of its codestreams, read by their items and
markers without decoding: the one frame's fragments, JPEG and JPEG-LS start and end markers,
the JPEG 2000 main and tile-part headers, and where a frame holds free text that ingest blanks.
`pixels` checks and decodes with them; `preview` walks JPEG 2000 headers with them."""

import re
import struct
from collections.abc import Iterator

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

from portal.ingest.dicom.errors import Rejected

JPEG_FAMILY_SYNTAXES = frozenset(UID(u) for u in JPEGTransferSyntaxes + JPEGLSTransferSyntaxes)
_JPEG_LS_SYNTAXES = frozenset(UID(u) for u in JPEGLSTransferSyntaxes)
JPEG2000_SYNTAXES = frozenset(
    UID(u) for u in (JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)
)
DAMAGED = "damaged or truncated pixel data"


def damaged(ts: UID, detail: str) -> str:
    """The reason for a frame that does not decode completely: the syntax, then what is wrong."""
    return f"{DAMAGED} ({ts.name}: {detail})"


def single_frame(value: bytes, ts: UID) -> bytes:
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
            raise Rejected(damaged(ts, "it ends inside a fragment"))
        if pos:  # the first item is the basic offset table
            fragments.append((pos + 8, pos + 8 + length))
        pos += 8 + length
    if pos != len(value) or not fragments:
        raise Rejected(damaged(ts, "its fragments do not fill the pixel data"))
    return fragments


_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"


def check_jpeg_markers(frame: bytes, ts: UID) -> None:
    """A JPEG or JPEG-LS frame starts with SOI and ends with EOI (ITU-T T.81 B.2.1, T.87),
    before at most the one byte that pads a fragment to an even length (PS3.5 A.4). A cut
    codestream has no EOI, and the decoders would fill the missing rows without a word."""
    if not frame.startswith(_SOI):
        raise Rejected(damaged(ts, "it does not start with the SOI marker"))
    if not (frame.endswith(_EOI) or (len(frame) % 2 == 0 and frame[-3:-1] == _EOI)):
        raise Rejected(damaged(ts, "the codestream does not end with its EOI marker"))


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


# Where a JPEG scan's coded data end: the next marker. In the coded data 0xFF 0x00 is a
# stuffed 0xFF and RSTn markers belong to the scan (ITU-T T.81 B.1.1.2, F.1.2.3); in JPEG-LS
# the byte after 0xFF has its high bit stuffed to 0 (T.87 A.1).
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_LS_SCAN_END = re.compile(rb"\xff[\x80-\xcf\xd8-\xff]")


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
        raise Rejected(damaged(ts, str(exc))) from exc
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
