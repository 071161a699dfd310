"""Grad-CAM of the scalar age output on the last stage, computed in the prediction's own pass.

The head pools the last stage globally, so d(age)/d(A[k, i, j]) = d(age)/d(pooled[k]) / (h w):
Grad-CAM's channel weights (Selvaraju et al. 2017, Eq. 1) are the head's gradient with respect
to the pooled features. Only the head needs a backward pass; the backbone runs once, without
gradients, and its feature map serves both the prediction and the heatmap.
"""

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from inference_worker.model import ResNet
from inference_worker.preprocess import Geometry


@dataclass
class Output:
    age: Tensor  # N, on the model's normalised scale
    cam: Tensor  # N x h x w, non-negative, on the last stage's grid


def predict_with_cam(model: ResNet, x: Tensor, sex: Tensor) -> Output:
    """Prediction and Grad-CAM in one backbone pass (model in eval mode)."""
    with torch.no_grad():
        features = model.forward_features(x)
    features = features.float()
    pooled = model.pool(features).requires_grad_(True)
    with torch.enable_grad():
        age = model.forward_head(pooled, sex.float())
        (weights,) = torch.autograd.grad(age.sum(), pooled)  # rows are independent samples
    h, w = features.shape[2:]
    cam = F.relu(torch.einsum("nc,nchw->nhw", weights / (h * w), features))
    return Output(age=age.detach(), cam=cam.detach())


def to_original_grid(cam: Tensor, geometry: Geometry) -> np.ndarray:
    """Upsample one CAM to the square input, cut the padding, resize to rows x columns; 0..1."""
    square = F.interpolate(
        cam[None, None].float(),
        size=(geometry.size, geometry.size),
        mode="bilinear",
        align_corners=False,
    )[0, 0]
    g = geometry
    inner = square[g.top : g.top + g.scaled_rows, g.left : g.left + g.scaled_columns]
    full = F.interpolate(
        inner[None, None], size=(g.rows, g.columns), mode="bilinear", align_corners=False
    )[0, 0]
    peak = float(full.max())
    return (full / peak).clamp(0, 1).numpy() if peak > 0 else np.zeros((g.rows, g.columns))


# Anchors of a perceptually ordered colour map (dark blue -> cyan -> yellow -> red).
_ANCHORS = np.array(
    [[0.0, 0.0, 0.5], [0.0, 0.3, 1.0], [0.0, 0.9, 0.9], [1.0, 0.9, 0.0], [1.0, 0.1, 0.0]]
)


def colourise(heat: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """RGBA uint8 overlay: colour by heat, transparency where the model did not look."""
    position = np.clip(heat, 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    alpha = np.clip(heat, 0, 1) * max_alpha
    return (np.dstack([rgb, alpha]) * 255).round().astype(np.uint8)


def png_bytes(heat: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(colourise(heat), mode="RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
