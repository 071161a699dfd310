"""DICOM to model input, the same function for training and serving.

Modality LUT (rescale), then the file's VOI LUT or window, or a robust percentile window when it
has none; MONOCHROME1 inverted so bone is always bright; aspect-preserving resize and padding to a
square; normalised. `Geometry` remembers the resize and padding so heatmaps can be mapped back
onto the original pixel grid. `decode_file` is the predict pipeline's unit of CPU work: one file
to a model input, with each stage's milliseconds and, when it fails, a reason without a server path.
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from inference_worker import quiet_pydicom
from inference_worker.ages import normalise_sex

pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
# pydicom's warnings quote the stored file's path: none reaches stderr or a log, in the worker
# and in the command-line tools (predict, train, evaluate, demo) that read DICOM through here.
quiet_pydicom.install()

# Fixed normalisation recorded in every model card: input = (x - MEAN) / STD for x in [0, 1].
MEAN, STD = 0.5, 0.25
PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class Geometry:
    """Where the original image sits inside the square input."""

    rows: int
    columns: int
    size: int
    scaled_rows: int
    scaled_columns: int
    top: int
    left: int


def read_pixels(ds: Dataset) -> np.ndarray:
    """Grayscale in [0, 1], bright = dense, whatever the file's encoding and photometry."""
    pixels = ds.pixel_array
    if pixels.ndim != 2:
        # Several frames or colour samples: not one radiograph (issue 9, a 1 GiB "8 frames").
        raise ValueError(f"pixel data of shape {pixels.shape}, not one grayscale frame")
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        # Linear window, PS3.3 C.11.2.1.2.1; the first of several is the default.
        center, width = (float(_first(ds.WindowCenter)), float(_first(ds.WindowWidth)))
        image = np.clip((values - (center - 0.5)) / max(width - 1.0, 1.0) + 0.5, 0.0, 1.0)
    elif "VOILUTSequence" in ds:
        lut_data = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=np.float32)
        mapped = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float32)
        low, high = float(lut_data.min()), float(max(lut_data.max(), lut_data.min() + 1))
        image = np.clip((mapped - low) / (high - low), 0.0, 1.0)
    else:
        low, high = (float(v) for v in np.percentile(values, PERCENTILES))
        image = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        image = 1.0 - image
    return image


def _first(value: object) -> object:
    return value[0] if isinstance(value, MultiValue | list) else value


def to_input(image: np.ndarray, size: int) -> tuple[Tensor, Geometry]:
    """Resize keeping the aspect ratio, pad to size x size (centred), normalise: 1 x S x S."""
    rows, columns = image.shape
    scale = size / max(rows, columns)
    scaled_rows, scaled_columns = max(1, round(rows * scale)), max(1, round(columns * scale))
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    resized = F.interpolate(
        tensor,
        size=(scaled_rows, scaled_columns),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0]
    top, left = (size - scaled_rows) // 2, (size - scaled_columns) // 2
    padded = torch.zeros((1, size, size), dtype=torch.float32)
    padded[:, top : top + scaled_rows, left : left + scaled_columns] = resized
    geometry = Geometry(rows, columns, size, scaled_rows, scaled_columns, top, left)
    return (padded - MEAN) / STD, geometry


def preprocess(ds: Dataset, size: int = 512) -> tuple[Tensor, Geometry]:
    return to_input(read_pixels(ds), size)


def preprocess_file(path: str | Path, size: int = 512) -> tuple[Tensor, Geometry, str]:
    """Tensor, geometry and sex (M, F or O) of one DICOM file."""
    ds = pydicom.dcmread(path)
    tensor, geometry = preprocess(ds, size)
    return tensor, geometry, normalise_sex(ds.get("PatientSex"))


# A token that starts at a root (/srv, C:\, ~/) or holds two separators (images/site/a.dcm).
_PATH = re.compile(
    r"""(?:(?<=^)|(?<=[\s'"(=]))"""
    r"""(?:[A-Za-z]:[\\/]|[~/\\]|[^\s'"]*[\\/][^\s'"]*[\\/])[^\s'",:;)]*"""
)


def describe(exc: BaseException) -> str:
    """`Type: message` with every path cut out: reasons travel to the portal and its users, and a
    server's paths are none of theirs (issue 9). OSError keeps its errno text alone."""
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    else:
        message = _PATH.sub("<path>", str(exc))
    message = " ".join(message.split())[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@dataclass
class Decoded:
    """One file ready for the model, or why it is not. `unreadable` is True only when the file
    itself cannot be read or decoded (retrying cannot help); False for faults of this machine."""

    tensor: Tensor | None = None
    geometry: Geometry | None = None
    sex: str = "O"
    error: str | None = None
    unreadable: bool = False
    ms: dict[str, float] = field(default_factory=dict)


def decode_file(path: str, size: int, sex: str | None = None) -> Decoded:
    """Read and preprocess one file; never raises for a bad file. `sex` overrides PatientSex."""
    start = time.perf_counter()
    decoded = Decoded()
    try:
        ds = pydicom.dcmread(path)
    except OSError as exc:
        # Missing, unreadable mount, I/O error: a fault of this machine's storage, not the file's.
        decoded.error = f"the image file cannot be opened: {describe(exc)}"
        return decoded
    except Exception as exc:
        decoded.error, decoded.unreadable = f"cannot read the file: {describe(exc)}", True
        return decoded
    loaded = time.perf_counter()
    decoded.ms["load"] = (loaded - start) * 1000
    try:
        decoded.tensor, decoded.geometry = preprocess(ds, size)
    except MemoryError as exc:
        decoded.error = f"out of memory while decoding: {describe(exc)}"
    except Exception as exc:
        decoded.error, decoded.unreadable = f"cannot decode the pixel data: {describe(exc)}", True
    decoded.ms["preprocess"] = (time.perf_counter() - loaded) * 1000
    decoded.sex = normalise_sex(sex or ds.get("PatientSex"))
    return decoded
