import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F  # noqa: N812

from inference_worker import checkpoint
from inference_worker.heatmap import (
    colourise,
    compact_heats,
    compact_shape,
    png_bytes,
    predict_with_cam,
    to_original_grid,
)
from inference_worker.model import build_model, sex_tensor
from inference_worker.predict import Predictor
from inference_worker.preprocess import Geometry
from tests.dicom_files import make_dicom


def test_single_pass_grad_cam_equals_classic_grad_cam():
    """Weights from the head's gradient equal the mean of d(age)/d(feature map) over space."""
    torch.manual_seed(0)
    model = build_model("ca_resnet18", width=8).eval()
    x, sex = torch.randn(3, 1, 64, 64), sex_tensor(["M", "F", "O"])
    fast = predict_with_cam(model, x, sex)

    features = model.forward_features(x)
    features.retain_grad()
    age = model.forward_head(model.pool(features), sex)
    age.sum().backward()
    weights = features.grad.mean(dim=(2, 3))
    classic = F.relu(torch.einsum("nc,nchw->nhw", weights, features.detach()))

    torch.testing.assert_close(fast.age, age.detach())
    torch.testing.assert_close(fast.cam, classic, rtol=1e-4, atol=1e-6)


def _quadrant_task(n: int, size: int, generator: torch.Generator):
    """Age is the size of a bright square inside the top-left quadrant; noise elsewhere."""
    x = torch.randn(n, 1, size, size, generator=generator) * 0.3
    sides = torch.randint(2, size // 2 - 2, (n,), generator=generator)
    for i, side in enumerate(sides.tolist()):
        x[i, 0, 2 : 2 + side, 2 : 2 + side] += 2.0
        # A distractor of random size in the bottom-right quadrant, unrelated to age.
        other = int(torch.randint(2, size // 2 - 2, (1,), generator=generator))
        x[i, 0, size - 2 - other : size - 2, size - 2 - other : size - 2] += 2.0
    y = (sides.float() - sides.float().mean()) / sides.float().std()
    return x, y


def test_grad_cam_puts_most_heat_where_the_age_signal_is():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    size = 128  # a 4 x 4 last stage, fine enough to tell quadrants apart
    model = build_model("ca_resnet18", width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sex = sex_tensor(["O"] * 32)
    for _ in range(150):
        x, y = _quadrant_task(32, size, g)
        loss = F.l1_loss(model(x, sex), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    x, y = _quadrant_task(64, size, g)
    out = predict_with_cam(model, x, sex_tensor(["O"] * 64))
    assert float(F.l1_loss(out.age, y)) < 0.5  # it learned the task
    geometry = Geometry(size, size, size, size, size, 0, 0)
    heats = np.stack([to_original_grid(cam, geometry) for cam in out.cam])
    top_left = heats[:, : size // 2, : size // 2].sum()
    assert top_left / heats.sum() > 0.5, top_left / heats.sum()


def _tiny_predictor(folder) -> Predictor:
    model = build_model("ca_resnet18", width=8)
    card = checkpoint.save(
        folder,
        model,
        {
            "name": "tiny",
            "architecture": "ca_resnet18",
            "width": 8,
            "input_size": 64,
            "normalisation": {"age_mean_days": 2000.0, "age_std_days": 1000.0},
        },
    )
    return Predictor(model.eval(), card, torch.device("cpu"))


def test_heatmap_png_is_an_8_bit_grey_map_of_the_image_at_most_128_px_long(tmp_path):
    predictor = _tiny_predictor(tmp_path / "model")
    tall = make_dicom(tmp_path / "tall.dcm", rows=600, cols=450)
    small = make_dicom(tmp_path / "small.dcm", rows=100, cols=70)
    results = predictor.run(
        [str(tall), str(small)],
        heatmap_paths=[str(tmp_path / "tall.png"), str(tmp_path / "small.png")],
    )
    assert [r.error for r in results] == [None, None]
    tall_png, small_png = (Image.open(r.heatmap) for r in results)
    assert (tall_png.mode, tall_png.size) == ("L", (96, 128))  # the 600 x 450 film's aspect
    assert (small_png.mode, small_png.size) == ("L", (70, 100))  # never larger than the film
    assert (
        results[0].heatmap_sha256
        == hashlib.sha256(Path(results[0].heatmap).read_bytes()).hexdigest()
    )
    assert set(results[0].ms) == {"load", "preprocess", "predict", "heatmap", "encode"}


def _grad_cam_like(n: int, generator: torch.Generator) -> torch.Tensor:
    """16 x 16 maps with a few hot blobs and speckle, as a 512 input's last stage gives."""
    cams = F.relu(torch.randn(n, 16, 16, generator=generator)) * 0.3
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    for k in range(n):
        for cy, cx in torch.rand(3, 2, generator=generator) * 16:
            cams[k] += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6)
    return cams


def test_compact_heatmap_stretched_over_the_film_matches_the_full_size_map(tmp_path):
    """A 2,000 x 2,000 film and a 2,000 x 1,600 one: the stored map, stretched back over the image
    (bilinear, as the viewer draws it), stays within 0.02 of today's full-size heat on 0..1."""
    g = torch.Generator().manual_seed(0)
    for rows, columns in [(2000, 2000), (2000, 1600)]:
        scale = 512 / max(rows, columns)
        scaled = round(rows * scale), round(columns * scale)
        geometry = Geometry(
            rows, columns, 512, *scaled, (512 - scaled[0]) // 2, (512 - scaled[1]) // 2
        )
        cams = _grad_cam_like(4, g)
        for cam, compact in zip(cams, compact_heats(cams, [geometry] * 4), strict=True):
            png = png_bytes(compact.numpy())
            assert len(png) < 30_000
            assert max(compact.shape) <= 256
            stored = torch.from_numpy(np.array(Image.open(io.BytesIO(png)))).float() / 255
            assert stored.shape == compact_shape(rows, columns)
            stretched = F.interpolate(
                stored[None, None], size=(rows, columns), mode="bilinear", align_corners=False
            )[0, 0].numpy()
            full = to_original_grid(cam, geometry)
            assert np.abs(stretched - full).mean() < 0.02


def test_png_bytes_decode_to_the_same_map_and_refuse_floats():
    heat = np.random.default_rng(0).integers(0, 256, size=(37, 53), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(heat)))), heat)
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(heat / 255.0)


def test_a_stored_map_is_coloured_as_its_0_to_1_heat():
    heat = np.linspace(0, 1, 256)[None]
    stored = (heat * 255).round().astype(np.uint8)
    assert np.abs(colourise(stored).astype(int) - colourise(heat).astype(int)).max() <= 1
