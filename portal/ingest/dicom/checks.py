"""Whether a data set is a radiograph that ingest can use: limits, defined terms, the checks."""

from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset
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
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from portal.ingest.dicom import elements
from portal.ingest.dicom.errors import Rejected
from portal.ingest.dicom.pixels import check_pixels, number_of_frames
from portal.ingest.dicom.subject import check_subject
from portal.ingest.outcomes import Limits

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

# Every transfer syntax ingest reads: those whose pixels a decoder installed here decodes
# (pydicom's own, pylibjpeg, CharLS, Pillow). The one list: the checks refuse a file in any
# other, and the DICOM listener proposes exactly these for the storage classes it accepts.
ACCEPTED_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2K,
    RLELossless,
)


# The usable-range rule (docs/ingest.md, "What is accepted"): a film is refused when its pixels hold
# one value, or when the middle 98% of them (1st to 99th percentile) span fewer grey levels
# than MIN_USABLE_GREY_LEVELS or than MIN_USABLE_FRACTION of the 2**BitsStored the header
# declares. Real radiographs span 10% to 99% of theirs (pydicom's, pydicom-data's and
# deid-data's CR and DX films); an image of a blank plate, a test pattern of one value or
# pixels that barely differ from it fall far below. Counted over about USABLE_RANGE_SAMPLE
# pixels: every n-th pixel of every n-th row of a native film (about 50 microseconds a film,
# whatever its size) or of a full decode, a JPEG 2000 film at its checking resolution.
USABLE_RANGE_PERCENTILES = (1.0, 99.0)
MIN_USABLE_GREY_LEVELS = 16
MIN_USABLE_FRACTION = 1 / 1024
USABLE_RANGE_SAMPLE = 16384


def check_radiograph(
    ds: Dataset, limits: Limits, load_pixels: Callable[[], bytes] | None = None
) -> None:
    """Raise Rejected unless `ds` is a single-frame grayscale CR/DX image of a human's chest
    (`subject`) whose pixels decode."""
    modality = str(elements.get(ds, "Modality", "") or "").strip().upper()
    if not modality:
        raise Rejected("no Modality attribute; expected CR or DX")
    if modality not in RADIOGRAPH_MODALITIES:
        named = modality if modality in MODALITY_TERMS else "(not a defined term)"
        raise Rejected(f"modality {named} is not a radiograph (expected CR or DX)")
    check_subject(ds)  # a human child's chest: species, breed, body part
    if "SOPInstanceUID" not in ds or not str(ds.SOPInstanceUID).strip():
        raise Rejected("no SOPInstanceUID")
    if "PixelData" not in ds:
        raise Rejected("no pixel data")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:  # PS3.3 C.7.6.3: one of them
        raise Rejected("float pixel data beside the pixel data; only integer radiographs")
    ts = transfer_syntax(ds)
    if ts is not None and not ts.is_transfer_syntax:
        raise Rejected("unknown transfer syntax (not one of the standard's); cannot decode it")
    if ts is not None and ts not in ACCEPTED_TRANSFER_SYNTAXES:
        raise Rejected(f"transfer syntax {ts.name} is not one that ingest reads")
    frames = number_of_frames(ds)
    if frames > 1:
        raise Rejected(f"multi-frame image ({frames} frames); only single-frame radiographs")
    photometric = str(elements.get(ds, "PhotometricInterpretation", "") or "").strip().upper()
    samples = _int(elements.get(ds, "SamplesPerPixel", 1), default=1)
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
    bits_allocated = _int(elements.get(ds, "BitsAllocated"), default=0)
    bits_stored = _int(elements.get(ds, "BitsStored", bits_allocated), default=bits_allocated)
    if bits_allocated not in (8, 16) or not 8 <= bits_stored <= 16:
        raise Rejected(
            f"unsupported bit depth ({bits_stored} stored in {bits_allocated}); 8 to 16 bits only"
        )
    rows, cols = (
        _int(elements.get(ds, "Rows"), default=0),
        _int(elements.get(ds, "Columns"), default=0),
    )
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
    pixels = check_pixels(
        ds,
        ts,
        (rows, cols, bits_allocated, bits_stored),
        load_pixels or (lambda: ds.PixelData),
        sample_pixels=USABLE_RANGE_SAMPLE,
    )
    check_usable_range(pixels, bits_stored)


def check_usable_range(pixels: np.ndarray, bits_stored: int) -> None:
    """Raise Rejected for constant pixels or a usable range that is a sliver (the rule above)."""
    step = max(1, int((pixels.size / USABLE_RANGE_SAMPLE) ** 0.5))
    sample = pixels[::step, ::step].ravel()
    low, high = sample.min(), sample.max()
    if low == high:
        raise Rejected(f"constant pixel data (every pixel sampled is {low}): a blank image")
    ranks = [round(q / 100 * (sample.size - 1)) for q in USABLE_RANGE_PERCENTILES]
    p_low, p_high = _nearest_ranks(sample, ranks, int(low), int(high))
    span = float(p_high) - float(p_low)
    needed = max(MIN_USABLE_GREY_LEVELS, MIN_USABLE_FRACTION * 2**bits_stored)
    if span < needed:
        raise Rejected(
            f"usable range is a sliver: 98% of the pixels lie within {span:g} grey levels "
            f"(at least {needed:g} needed of the {2**bits_stored} that {bits_stored} bits hold)"
        )


# Below this many grey levels between the sample's least and greatest, its values are counted
# (np.bincount); above, partitioned: counting 4,096 levels costs a quarter of a partition of
# the sample, counting 65,536 three times as much.
COUNTED_LEVELS = 16384


def _nearest_ranks(sample: np.ndarray, ranks: list[int], low: int, high: int) -> list[int]:
    """The values of the given ranks (0-based, nearest rank) of an integer sample, as a sort
    would give them: the percentiles of the usable-range rule (np.percentile costs twice as
    much as a partition)."""
    if high - low >= COUNTED_LEVELS or sample.dtype.kind not in "iu":
        return [int(v) for v in np.partition(sample, ranks)[ranks]]
    cumulative = np.cumsum(np.bincount(sample.astype(np.int32) - low, minlength=high - low + 1))
    return [int(v) + low for v in np.searchsorted(cumulative, ranks, side="right")]


def transfer_syntax(ds: Dataset) -> UID | None:
    """The file's transfer syntax; None for a bare data set (no Part 10 header)."""
    meta = getattr(ds, "file_meta", None)
    ts = elements.get(meta, "TransferSyntaxUID") if meta is not None else None
    return UID(str(ts).strip()) if ts else None


def _int(value: object, *, default: int) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
