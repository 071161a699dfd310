import numpy as np
import pydicom
import torch
from PIL import Image
from torch.nn import functional as F  # noqa: N812

from inference_worker import checkpoint
from inference_worker.heatmap import predict_with_cam, to_original_grid
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


def test_heatmap_png_has_the_dicom_rows_and_columns(tmp_path):
    model = build_model("ca_resnet18", width=8)
    card = checkpoint.save(
        tmp_path / "model",
        model,
        {
            "name": "tiny",
            "architecture": "ca_resnet18",
            "width": 8,
            "input_size": 64,
            "normalisation": {"age_mean_days": 2000.0, "age_std_days": 1000.0},
        },
    )
    predictor = Predictor(model.eval(), card, torch.device("cpu"))
    dicom = make_dicom(tmp_path / "a.dcm", rows=150, cols=110)
    [result] = predictor.run([str(dicom)], heatmap_paths=[str(tmp_path / "a.png")])
    assert result.error is None
    assert result.heatmap == str(tmp_path / "a.png")
    png = Image.open(result.heatmap)
    assert png.mode == "RGBA"
    assert png.size == (110, 150) == (pydicom.dcmread(dicom).Columns, pydicom.dcmread(dicom).Rows)
    assert set(result.ms) == {"load", "preprocess", "predict", "heatmap", "encode"}
