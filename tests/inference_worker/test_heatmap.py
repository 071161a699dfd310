import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F  # noqa: N812

from inference_worker import checkpoint, demo
from inference_worker.heatmap import (
    SIGNED_RANGE,
    ZERO_LEVEL,
    cam_from_features,
    colourise,
    compact_heats,
    compact_shape,
    is_blank,
    png_bytes,
    predict_with_cam,
    table,
    to_original_grid,
)
from inference_worker.model import build_model, sex_tensor
from inference_worker.predict import Predictor, Settings, run_batch
from inference_worker.preprocess import Geometry
from tests.dicom_files import make_dicom

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("pool", ["avg", "avgmax"])
def test_single_pass_grad_cam_equals_classic_grad_cam(pool):
    """Weights from the head's gradient equal the mean of d(age)/d(feature map) over space,
    whichever statistics the head pools; the map keeps its sign (no ReLU: a regression's
    evidence for younger is evidence too)."""
    torch.manual_seed(0)
    model = build_model("ca_resnet18", width=8, pool=pool).eval()
    x, sex = torch.randn(3, 1, 64, 64), sex_tensor(["M", "F", "O"])
    fast = predict_with_cam(model, x, sex)

    features = model.forward_features(x)
    features.retain_grad()
    age = model.forward_head(model.pool(features), sex)
    age.sum().backward()
    weights = features.grad.mean(dim=(2, 3))
    classic = torch.einsum("nc,nchw->nhw", weights, features.detach())

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


@pytest.mark.train  # trains a small model until its heat can be checked
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
    # Signed maps also colour the noise a little (each cell's contribution counts from zero
    # features, not from an average film), so: the most |heat| per quadrant, by a margin.
    heats = np.abs(np.stack([to_original_grid(cam, geometry) for cam in out.cam]))
    halves = (slice(0, size // 2), slice(size // 2, None))
    quadrants = [heats[:, rows, cols].sum() for rows in halves for cols in halves]
    top_left, others = quadrants[0], quadrants[1:]
    assert top_left > 1.5 * max(others), quadrants


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
    """16 x 16 signed maps with a few blobs pushing up or down and speckle, as a 512 input's
    last stage gives."""
    cams = torch.randn(n, 16, 16, generator=generator) * 0.3
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    for k in range(n):
        for sign, (cy, cx) in zip(
            (1, -1, 1), torch.rand(3, 2, generator=generator) * 16, strict=True
        ):
            cams[k] += sign * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6)
    return cams


def test_compact_heatmap_stretched_over_the_film_matches_the_full_size_map(tmp_path):
    """A 2,000 x 2,000 film and a 2,000 x 1,600 one: the stored map, stretched back over the image
    (bilinear, as the viewer draws it), stays within 0.02 of the full-size map on -1..1."""
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
            levels = torch.from_numpy(np.array(Image.open(io.BytesIO(png)))).float()
            stored = (levels - ZERO_LEVEL) / SIGNED_RANGE
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


def test_a_stored_map_is_coloured_as_its_signed_value():
    heat = np.linspace(-1, 1, 255)[None]
    stored = (heat * SIGNED_RANGE + ZERO_LEVEL).round().astype(np.uint8)
    assert np.abs(colourise(stored).astype(int) - colourise(heat).astype(int)).max() <= 1


def _two_channel_model(up: float, down: float) -> torch.nn.Module:
    """A model whose head reads only channels 0 and 1 of the last stage, linearly (the hidden
    units stay on): d(age)/d(pooled) is `up` for channel 0 and `down` for channel 1."""
    model = build_model("ca_resnet18", width=8).eval()
    first, last = model.head[0], model.head[3]
    with torch.no_grad():
        first.weight.zero_()
        first.bias.fill_(1.0)
        first.weight[0, 0] = first.weight[1, 1] = 1.0
        last.weight.zero_()
        last.weight[0, 0], last.weight[0, 1] = up, down
    return model


def _halves(n: int, channels: int, left: int, right: int | None) -> torch.Tensor:
    """Features: channel `left` on in the left half, channel `right` in the right half."""
    features = torch.zeros(n, channels, 4, 4)
    features[:, left, :, :2] = 1.0
    if right is not None:
        features[:, right, :, 2:] = 1.0
    return features


def test_the_map_is_signed_warm_where_the_age_goes_up_and_cool_where_it_goes_down():
    model = _two_channel_model(up=1.0, down=-1.0)
    sex = sex_tensor(["F"])
    geometry = Geometry(64, 64, 64, 64, 64, 0, 0)
    features = _halves(1, model.num_features, left=0, right=1)
    out = cam_from_features(model, features, sex)
    assert (out.cam[0, :, :2] > 0).all()
    assert (out.cam[0, :, 2:] < 0).all()
    (stored,) = (h.numpy() for h in compact_heats(out.cam, [geometry]))
    assert stored[:, :16].min() > ZERO_LEVEL
    assert stored[:, -16:].max() < ZERO_LEVEL
    assert stored.max() == 255
    assert stored.min() == 1
    rgba = colourise(stored)
    left, right = rgba[32, 4], rgba[32, -4]
    assert left[0] > 200
    assert left[2] < 50
    assert right[2] > 200
    assert right[0] < 50
    assert left[3] > 100
    assert right[3] > 100
    assert rgba[32, 32, 3] < left[3]  # fading towards the boundary, where the halves cancel
    assert not is_blank(stored)

    # Evidence only for a younger age: the ReLU of classification Grad-CAM drew nothing here.
    younger = cam_from_features(model, _halves(1, model.num_features, left=1, right=None), sex)
    assert (younger.cam <= 0).all()
    assert (younger.cam < 0).any()
    (stored,) = (h.numpy() for h in compact_heats(younger.cam, [geometry]))
    assert not is_blank(stored)
    assert stored.min() == 1
    assert stored.max() == ZERO_LEVEL


def test_a_truly_zero_gradient_gives_a_blank_map_and_the_prediction_says_so(tmp_path):
    """Every hidden unit of the head off: the age no longer depends on the image, the map is
    zero everywhere, stored as the zero level, and flagged blank in the CLI and portal answers."""
    model = build_model("ca_resnet18", width=8)
    with torch.no_grad():
        model.head[0].bias.fill_(-1e6)
    card = checkpoint.save(
        tmp_path / "model",
        model,
        {
            "name": "dead",
            "architecture": "ca_resnet18",
            "width": 8,
            "input_size": 64,
            "normalisation": {"age_mean_days": 2000.0, "age_std_days": 1000.0},
        },
    )
    dead = Predictor(model.eval(), card, torch.device("cpu"))
    alive = _tiny_predictor(tmp_path / "alive")
    film = make_dicom(tmp_path / "film.dcm", rows=90, cols=70)
    (result,) = dead.run([str(film)], heatmap_paths=[str(tmp_path / "dead.png")])
    assert result.error is None
    assert result.heatmap_blank is True
    stored = np.asarray(Image.open(result.heatmap))
    assert is_blank(stored)
    assert (stored == ZERO_LEVEL).all()
    assert result.as_dict("dead")["heatmap_blank"] is True
    (result,) = alive.run([str(film)], heatmap_paths=[str(tmp_path / "alive.png")])
    assert result.heatmap_blank is False
    assert not is_blank(np.asarray(Image.open(result.heatmap)))

    payload = {
        "job": 1,
        "model": {"name": "dead", "path": "model", "sha256": card["sha256"]},
        "images": [{"id": 7, "path": "film.dcm", "sex": "F", "heatmap": "heat/7.png"}],
    }
    (answer,) = run_batch(payload, tmp_path, Settings())["results"]
    assert (answer["heatmap_scale"], answer["heatmap_blank"]) == ("signed", True)


def test_is_blank_means_no_pixel_off_the_zero_level():
    flat = np.full((8, 8), ZERO_LEVEL, np.uint8)
    assert is_blank(flat)
    for level in (ZERO_LEVEL - 1, ZERO_LEVEL + 1):
        one = flat.copy()
        one[3, 5] = level
        assert not is_blank(one)


def test_the_viewer_twin_of_the_colour_map_is_current():
    """frontend/src/viewer/heatmap-colours.test.ts checks the viewer's colours against this
    file; regenerate it with `python -m inference_worker.heatmap > <the file>`."""
    stored = json.loads((ROOT / "frontend/src/viewer/heatmap.expected.json").read_text())
    assert stored == json.loads(json.dumps(table()))


@pytest.mark.slow
def test_the_demo_model_leaves_none_of_200_heatmaps_blank(tmp_path):
    """The demo model's recipe, on 100 phantoms of each site profile and one epoch (so that it
    trains in minutes here), predicts those 200 films with heatmaps: none is blank, by the flag
    or by the stored map. Under the one-sided (ReLU) map of before, 25 of 200 such films of a
    two-epoch demo model were blank: those whose evidence all pointed younger."""
    out = tmp_path / "models" / "demo"
    assert demo.main(["--out", str(out), "--count", "100", "--epochs", "1"]) == 0
    files = sorted(str(p) for p in (tmp_path / "models" / "phantoms").rglob("*.dcm"))
    assert len(files) == 200
    cpu = torch.device("cpu")
    predictor = Predictor(*checkpoint.load(out, cpu), cpu)
    results = predictor.run(
        files,
        heatmap_paths=[str(tmp_path / "heat" / f"{k}.png") for k in range(len(files))],
        settings=Settings(gpu_batch=32, decode_workers=2),
    )
    assert [r.error for r in results] == [None] * len(files)
    flagged = [r.file for r in results if r.heatmap_blank is not False]
    stored = [r.file for r in results if is_blank(np.asarray(Image.open(r.heatmap)))]
    assert (flagged, stored) == ([], [])
