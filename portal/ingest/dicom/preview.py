"""A small 8-bit rendition of a stored film: the viewer draws it at once while the browser
decodes the full DICOM (a 2k x 2k JPEG 2000 film takes seconds), then replaces it.

Rendered as the viewer first shows the film: modality LUT, the file's first VOI window (or its
VOI LUT, or the stored range as Cornerstone3D takes it without either), MONOCHROME1 inverted,
and the physical aspect of its pixel spacing. Pixels only: no tag value reaches the JPEG. A
JPEG 2000 frame is decoded at reduced resolution, which costs a fraction of a full decode.
"""

import io
import math
import warnings

import numpy as np
from PIL import Image as PILImage
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from portal.ingest.dicom.checks import transfer_syntax
from portal.ingest.dicom.codestream import JPEG2000_SYNTAXES, check_j2k_codestream
from portal.ingest.dicom.pixels import _decode_j2k_reduced

# The long side of the viewer's preview, in pixels, at most: enough for a first look, small
# enough (tens of kB) to arrive before the viewer's script has started. Its JPEG 2000 films are
# decoded at the resolution level nearest to J2K_PREVIEW_PIXELS (245 pixels for a 2k film): the
# decode is most of a preview's cost, and each level up costs about four times more.
PREVIEW_PIXELS = 512
J2K_PREVIEW_PIXELS = 320
JPEG_QUALITY = 85
_SSIZ = 42  # SOC, then SIZ's marker, Lsiz, Rsiz, eight 32-bit sizes and Csiz: 2 + 40 bytes


def render_preview(
    ds: Dataset,
    size: int = PREVIEW_PIXELS,
    image_format: str = "JPEG",
    *,
    j2k_pixels: int | None = None,
) -> bytes:
    """The film of `ds` as a JPEG (or PNG: DICOMweb's /rendered) at most `size` pixels on its
    long side (a smaller film at about its own size). A JPEG 2000 film is decoded at the
    resolution level nearest to `j2k_pixels` (default `size`) on its long side."""
    stored = _pixels(ds, size, j2k_pixels or size)
    values = apply_modality_lut(stored, ds).astype(np.float64)
    grey = _voi(values, ds)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        grey = 1.0 - grey
    image = PILImage.fromarray(np.round(grey * 255).astype(np.uint8), mode="L")
    shown = _display_size(ds, min(size, max(stored.shape)))
    image = image.resize(shown, PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    if image_format == "PNG":
        image.save(out, format="PNG")
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _pixels(ds: Dataset, size: int, j2k_pixels: int) -> np.ndarray:
    """The stored values at most `size` on the long side: JPEG 2000 at the resolution level
    nearest to `j2k_pixels`, any other film decoded and averaged over blocks."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    ts = transfer_syntax(ds)
    if ts in JPEG2000_SYNTAXES:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        levels = check_j2k_codestream(frame, rows=rows, cols=cols)
        # The first component's Ssiz (T.800 A.5.1), checked present by the walk above: its
        # precision, and whether its values are signed.
        precision, signed = (frame[_SSIZ] & 0x7F) + 1, bool(frame[_SSIZ] & 0x80)
        target = min(size, j2k_pixels)
        reduce = min(levels, max(0, round(math.log2(max(rows, cols) / target))))
        if not signed:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pixels = _decode_j2k_reduced(frame, reduce, rows=rows, cols=cols)
                if pixels.ndim == 2:
                    # Pillow widens 9 to 15-bit samples to 16 bits: back to the stored values.
                    if pixels.dtype == np.uint16 and precision < 16:
                        pixels = pixels >> (16 - precision)
                    return pixels
            except Exception:  # noqa: S110 (Pillow cannot reduce this one: decode in full)
                pass
    pixels = ds.pixel_array
    if pixels.ndim != 2:
        raise ValueError(f"pixel data of shape {pixels.shape}, not one grayscale frame")
    factor = max(1, math.ceil(max(rows, cols) / size))
    if factor == 1:
        return pixels
    height, width = (rows // factor) * factor, (cols // factor) * factor
    blocks = pixels[:height, :width].reshape(height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float64).round().astype(pixels.dtype)


def _first(value: object) -> float:
    return float(value[0] if isinstance(value, MultiValue | list) else value)


def _voi(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Grey levels in [0, 1] by the file's default VOI (PS3.3 C.11.2.1.2), else its range."""
    if "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        except (TypeError, ValueError, IndexError):
            center, width = math.nan, math.nan
        if math.isfinite(center) and math.isfinite(width) and width >= 1:
            function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
            if function == "SIGMOID":
                return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
            if function == "LINEAR_EXACT":
                return np.clip((values - (center - width / 2)) / width, 0.0, 1.0)
            return np.clip((values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5, 0.0, 1.0)
    if "VOILUTSequence" in ds:
        try:
            lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float64)
            mapped = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
            low, high = float(lut.min()), float(max(lut.max(), lut.min() + 1))
            return np.clip((mapped - low) / (high - low), 0.0, 1.0)
        except Exception:  # noqa: S110 (a damaged LUT: the range below)
            pass
    low, high = float(values.min()), float(values.max())
    return np.clip((values - low) / max(high - low, 1.0), 0.0, 1.0)


def _display_size(ds: Dataset, size: int) -> tuple[int, int]:
    """(width, height) of the film's physical extent scaled to `size` on its long side."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    row_mm, col_mm = 1.0, 1.0
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        if spacing and len(spacing) == 2:
            row_mm, col_mm = float(spacing[0]), float(spacing[1])
    except (TypeError, ValueError):
        pass
    if not (math.isfinite(row_mm) and math.isfinite(col_mm) and row_mm > 0 and col_mm > 0):
        row_mm, col_mm = 1.0, 1.0  # as the viewer shows a film without a usable spacing
    width, height = cols * col_mm, rows * row_mm
    scale = min(size, max(rows, cols)) / max(width, height)  # a small film is not enlarged
    return max(1, round(width * scale)), max(1, round(height * scale))
