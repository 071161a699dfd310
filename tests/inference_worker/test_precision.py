"""The backbone may run in bf16; the age head and the Grad-CAM weights always run in fp32, so a
GPU and a CPU give the same age from the same features (issue 9)."""

import torch

from inference_worker.heatmap import cam_from_features, head_with_cam_weights
from inference_worker.model import build_model, sex_tensor


def _bf16_features():
    torch.manual_seed(0)
    model = build_model("ca_resnet18", width=8).eval()
    x, sex = torch.randn(4, 1, 64, 64), sex_tensor(["M", "F", "O", "M"])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.forward_features(x)
    return model, features, sex


def test_the_backbone_under_autocast_gives_bf16_features_and_an_autocast_head_would_be_bf16():
    """The premise: without the guard, autocast runs the head in bf16."""
    model, features, sex = _bf16_features()
    assert features.dtype == torch.bfloat16
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.forward_head(model.pool(features), sex).dtype == torch.bfloat16


def test_the_head_under_bf16_autocast_runs_in_fp32_and_equals_an_fp32_head():
    model, features, sex = _bf16_features()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        age, weights = head_with_cam_weights(model, features, sex)
    assert age.dtype == torch.float32
    assert weights.dtype == torch.float32

    pooled = model.pool(features.float()).requires_grad_(True)
    fp32_age = model.forward_head(pooled, sex)
    (fp32_weights,) = torch.autograd.grad(fp32_age.sum(), pooled)
    assert torch.equal(age, fp32_age.detach())
    assert torch.equal(weights, fp32_weights)


def test_the_grad_cam_map_under_autocast_is_fp32_and_equals_the_fp32_map():
    model, features, sex = _bf16_features()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = cam_from_features(model, features, sex)
    reference = cam_from_features(model, features.float(), sex)
    assert output.cam.dtype == torch.float32
    assert torch.equal(output.cam, reference.cam)
    assert torch.equal(output.age, reference.age)
