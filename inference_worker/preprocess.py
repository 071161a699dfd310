"""DICOM to model input, the same function for training and serving.

Modality LUT (rescale), then the file's VOI LUT or window, or a robust percentile window when it
has none; MONOCHROME1 inverted so bone is always bright; aspect-preserving resize and padding to a
square; normalised. `Geometry` remembers the resize and padding so heatmaps can be mapped back
onto the original pixel grid.
"""

from dataclasses import dataclass
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

pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

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
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
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
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    tensor, geometry = preprocess(ds, size)
    return tensor, geometry, sex if sex in ("M", "F") else "O"
