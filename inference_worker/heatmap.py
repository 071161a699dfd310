"""A signed Grad-CAM of the scalar age output on the last stage, computed in the prediction's own
pass.

The head pools the last stage globally, so d(age)/d(A[k, i, j]) summed over the cells is
d(age)/d(pooled[k]), for the mean of channel k as for its maximum (`model.POOLS`): Grad-CAM's
channel weights (Selvaraju et al. 2017, Eq. 1, the gradient's mean over the cells) are h w times
the head's gradient with respect to channel k's pooled statistics, summed. Only the head needs a
backward pass; the backbone runs once, without gradients, and its feature map serves both the
prediction and the heatmap.

The map is signed (issue 17): each cell's value, sum_k w_k A[k, i, j] / (h w), is that cell's
first-order contribution to the predicted age (under `avgmax` the maximum's share is spread over
the cells, as Grad-CAM spreads every weight), positive where the region pushes the age up and
negative where it pushes it down. Classification Grad-CAM keeps only the positive part (a ReLU);
for a regression that blanked every map whose evidence pointed younger (21% of them).

Precision: the backbone may run under bf16 autocast; the head, its gradient (the Grad-CAM
weights) and the map run in fp32 with autocast off, so a GPU and a CPU give the same age from
the same features (issue 9: bf16 in the head moved ages by up to two weeks).

Stored heatmaps are compact: 8-bit single-channel PNGs covering the image's full extent, at most
128 px on the long side, coloured where they are shown (the viewer; `colourise` is the same map).
A stored level v means (v - ZERO_LEVEL) / SIGNED_RANGE of the map's largest |value|: 128 is no
contribution, 255 the strongest push up, 1 the strongest push down (0 is not used).
"""

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from inference_worker import heatmap_scales
from inference_worker.model import ResNet
from inference_worker.preprocess import Geometry

# The stored heatmap's long side at most (the issue allows 256). The CAM is 16 x 16 for a 512
# input, so 128 px is 8 px per cell: stretched over a 2,000 px film it stays within 0.008 of the
# full-size map (0.003 at 256 px), in a quarter of the pixels, so a third of the encoding time.
LONG_SIDE = 128

# The stored level of a zero contribution and the levels either side of it (signed maps).
ZERO_LEVEL = 128
SIGNED_RANGE = 127
# Written with the prediction (`heatmap_scale`); the portal reads a missing one as "positive",
# the 0..255 ReLU maps of workers before issue 17.
SCALE = heatmap_scales.SIGNED


@dataclass
class Output:
    age: Tensor  # N, on the model's normalised scale, fp32
    cam: Tensor  # N x h x w, signed, on the last stage's grid, fp32 (normalised age per cell)


def head_with_cam_weights(model: ResNet, features: Tensor, sex: Tensor) -> tuple[Tensor, Tensor]:
    """Age and Grad-CAM channel weights from the last stage's features, in fp32 whatever autocast
    the backbone ran under: autocast off, features cast to float."""
    with torch.autocast(features.device.type, enabled=False):
        pooled = model.pool(features.float()).detach().requires_grad_(True)
        with torch.enable_grad():
            age = model.forward_head(pooled, sex.float())
            (weights,) = torch.autograd.grad(age.sum(), pooled)  # rows are independent samples
    # Each statistic's channels in turn (`ResNet.pool`): the channel's weight is their sum.
    weights = weights.unflatten(1, (-1, features.shape[1])).sum(dim=1)
    return age.detach(), weights


def predict_with_cam(model: ResNet, x: Tensor, sex: Tensor, backbone=None) -> Output:
    """Prediction and Grad-CAM in one backbone pass (model in eval mode). `backbone` replaces
    `model.forward_features` (a compiled copy of it)."""
    with torch.no_grad():
        features = (backbone or model.forward_features)(x)
    return cam_from_features(model, features, sex)


def cam_from_features(model: ResNet, features: Tensor, sex: Tensor) -> Output:
    age, weights = head_with_cam_weights(model, features, sex)
    with torch.autocast(features.device.type, enabled=False), torch.no_grad():
        features = features.float()
        h, w = features.shape[2:]
        cam = torch.einsum("nc,nchw->nhw", weights / (h * w), features)
    return Output(age=age, cam=cam)


def compact_shape(rows: int, columns: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """Rows x columns of the stored heatmap: the image's aspect, at most `long_side` px."""
    scale = min(1.0, long_side / max(rows, columns))
    return max(1, round(rows * scale)), max(1, round(columns * scale))


def heat_on_grid(cams: Tensor, geometry: Geometry, rows: int, columns: int) -> Tensor:
    """CAMs of images that share one geometry (N x h x w) onto a rows x columns grid covering the
    original image: upsample to the square input, cut the padding, resize; each map divided by
    its largest |value|, so -1..1 (a map that is zero everywhere stays zero)."""
    g = geometry
    with torch.no_grad():
        square = F.interpolate(
            cams[:, None].float(), size=(g.size, g.size), mode="bilinear", align_corners=False
        )
        inner = square[:, :, g.top : g.top + g.scaled_rows, g.left : g.left + g.scaled_columns]
        grid = F.interpolate(inner, size=(rows, columns), mode="bilinear", align_corners=False)
        grid = grid[:, 0]
        peak = grid.abs().amax(dim=(1, 2), keepdim=True)
        return torch.where(peak > 0, grid / peak.clamp_min(1e-30), 0.0).clamp(-1, 1)


def to_original_grid(cam: Tensor, geometry: Geometry) -> np.ndarray:
    """One CAM at the DICOM's full rows x columns, -1..1 (the reference for the compact map)."""
    return heat_on_grid(cam[None], geometry, geometry.rows, geometry.columns)[0].cpu().numpy()


def compact_heats(cams: Tensor, geometries: list[Geometry]) -> list[Tensor]:
    """Each CAM as its stored 8-bit map (on the CAMs' device), images of one geometry at once."""
    out: list[Tensor | None] = [None] * len(geometries)
    groups: dict[Geometry, list[int]] = {}
    for k, geometry in enumerate(geometries):
        groups.setdefault(geometry, []).append(k)
    for geometry, members in groups.items():
        rows, columns = compact_shape(geometry.rows, geometry.columns)
        # Device-side selection: an index list would be a host-to-device copy mid-pipeline.
        chosen = cams if len(members) == len(cams) else torch.stack([cams[k] for k in members])
        heat = heat_on_grid(chosen, geometry, rows, columns)
        levels = (heat * SIGNED_RANGE).round_().add_(ZERO_LEVEL).to(torch.uint8)
        for k, one in zip(members, levels, strict=True):
            out[k] = one
    return out  # type: ignore[return-value]


def is_blank(heat: np.ndarray) -> bool:
    """The one definition of a blank heatmap: no pixel of the stored 8-bit map is off the zero
    level, so the viewer would draw nothing (every |value| below half a level, 1/254, after the
    division by the largest |value|). That division puts the peak at +-1, so a map is blank only
    when the model's gradient-weighted features are zero everywhere (e.g. every hidden unit of
    the head is off): then the prediction says so (`heatmap_blank`) and the viewer shows a
    message instead of an empty overlay."""
    return not bool(np.any(heat != ZERO_LEVEL))


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bytes(heat: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG (PNG spec, ISO/IEC 15948) of a uint8 map. Written here rather than
    by Pillow, whose adaptive per-row filter choice costs 4x: a smooth map needs only the Up
    filter, and zlib level 1 keeps a 128 px map near 6 KB in about a tenth of a millisecond."""
    if heat.dtype != np.uint8 or heat.ndim != 2:
        raise ValueError(f"a 2-D uint8 map, not {heat.dtype} of shape {heat.shape}")
    rows, columns = heat.shape
    scanlines = np.empty((rows, columns + 1), dtype=np.uint8)
    scanlines[:, 0] = 2  # filter type Up: each byte minus the one above it, modulo 256
    scanlines[0, 1:] = heat[0]
    np.subtract(heat[1:], heat[:-1], out=scanlines[1:, 1:])
    header = struct.pack(">IIBBBBB", columns, rows, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 1)),
            _chunk(b"IEND", b""),
        )
    )


# Anchors of the diverging colour map over -1..1: cool (blue, cyan) where the region pushes the
# predicted age down, warm (yellow, red) where it pushes it up; the opacity grows with |value|, so
# no contribution is transparent. The viewer (frontend/src/viewer/heatmap-colours.ts) colours
# stored maps with the same anchors and alpha, and draws its legend from them.
_ANCHORS = np.array(
    [[0.0, 0.25, 1.0], [0.0, 0.85, 1.0], [1.0, 1.0, 1.0], [1.0, 0.85, 0.0], [1.0, 0.1, 0.0]]
)
MAX_ALPHA = 0.6


def colourise(heat: np.ndarray, max_alpha: float = MAX_ALPHA) -> np.ndarray:
    """RGBA uint8 overlay of a -1..1 map (or a stored uint8 one): warm where the region pushes
    the age up, cool where it pushes it down, transparent where it does neither."""
    if heat.dtype == np.uint8:
        heat = (heat.astype(np.float64) - ZERO_LEVEL) / SIGNED_RANGE
    heat = np.clip(heat, -1, 1)
    position = (heat + 1) / 2 * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    alpha = np.abs(heat) * max_alpha
    return (np.dstack([rgb, alpha]) * 255).round().astype(np.uint8)


def table() -> dict:
    """The stored levels' meaning as data, for the viewer's twin (heatmap-colours.test.ts reads
    `frontend/src/viewer/heatmap.expected.json`)."""
    levels = np.arange(256, dtype=np.uint8)
    return {
        "zero_level": ZERO_LEVEL,
        "signed_range": SIGNED_RANGE,
        "max_alpha": MAX_ALPHA,
        "signed_rgba": colourise(levels[None])[0].tolist(),
        "blank": [[levels[k : k + 3].tolist(), is_blank(levels[k : k + 3])] for k in (0, 126, 253)]
        + [[[ZERO_LEVEL] * 3, is_blank(np.full(3, ZERO_LEVEL, np.uint8))]],
    }


if __name__ == "__main__":
    # python -m inference_worker.heatmap > frontend/src/viewer/heatmap.expected.json
    import json

    print(json.dumps(table(), separators=(",", ":")))
