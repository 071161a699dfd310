import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from inference_worker import checkpoint
from inference_worker.model import (
    ARCHITECTURES,
    BasicBlock,
    Bottleneck,
    CoordAttention,
    build_model,
    sex_tensor,
)


def _conv1x1(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    weight = conv.weight[:, :, 0, 0]
    return torch.einsum("oc,nchw->nohw", weight, x) + conv.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_coord_attention_matches_the_formula_of_hou_et_al(memory_format, training):
    torch.manual_seed(0)
    block = CoordAttention(48, reduction=4)
    bn = block.bn1
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    block.train(training)
    x = torch.randn(3, 48, 7, 5).contiguous(memory_format=memory_format)
    identity = torch.randn_like(x)

    z_h = x.mean(dim=3)  # N x C x H: average along the width (Eq. 2)
    z_w = x.mean(dim=2)  # N x C x W: average along the height (Eq. 3)
    f = _conv1x1(block.conv1, torch.cat([z_h, z_w], dim=2)[..., None])
    if training:  # batch statistics over every image and position
        mean, var = f.mean(dim=(0, 2, 3)), f.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    f = (f - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + bn.eps)
    f = f * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    f = f * torch.clamp(f + 3, 0, 6) / 6  # h-swish
    f_h, f_w = f[:, :, :7], f[:, :, 7:]
    g_h = torch.sigmoid(_conv1x1(block.conv_h, f_h))  # N x C x H x 1
    g_w = torch.sigmoid(_conv1x1(block.conv_w, f_w)).transpose(2, 3)  # N x C x 1 x W
    expected = x * g_h * g_w

    close = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(block(x), expected, **close)
    torch.testing.assert_close(block(x, identity), expected + identity, **close)
    with torch.no_grad():  # the in-place inference paths compute the same
        torch.testing.assert_close(block(x.clone()), expected, **close)
        torch.testing.assert_close(block(x.clone(), identity), expected + identity, **close)


def test_attention_maps_of_a_channels_last_input_keep_the_channels_innermost():
    """So that the multiply runs along contiguous memory in the input and both maps (on a CPU
    several times faster than maps whose channels are strided)."""
    block = CoordAttention(64).eval()
    x = torch.randn(2, 64, 12, 10).contiguous(memory_format=torch.channels_last)
    pooled_h, pooled_w = x.mean(dim=3), x.mean(dim=2)
    a_h, a_w = block.attention_maps(pooled_h, pooled_w, channels_last=True)
    assert (a_h.shape, a_w.shape) == ((2, 64, 12), (2, 64, 10))
    assert (a_h.stride(1), a_w.stride(1)) == (1, 1)
    contiguous = block.attention_maps(pooled_h, pooled_w, channels_last=False)
    torch.testing.assert_close((a_h, a_w), contiguous)


def test_coord_attention_reduces_to_max_of_8_and_c_over_r():
    assert CoordAttention(64, reduction=32).conv1.out_channels == 8
    assert CoordAttention(1024, reduction=32).conv1.out_channels == 32


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_builder_gives_one_finite_age_per_image(arch):
    model = build_model(arch, width=8).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 64), sex_tensor(["M", "F"]))
    assert out.shape == (2,)
    assert torch.isfinite(out).all()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock | Bottleneck)]
    attention = [isinstance(b.attn, CoordAttention) for b in blocks]
    assert all(attention) if arch.startswith("ca_") else not any(attention)


def test_attention_sits_after_the_last_batch_norm_and_before_the_residual_add():
    block = build_model("ca_resnet50", width=8).stages[1][1]
    seen = []
    block.bn3.register_forward_hook(lambda m, i, o: seen.append(("bn3", o)))
    block.attn.register_forward_hook(lambda m, i, o: seen.append(("attn", i)))
    x = torch.randn(1, block.conv1.in_channels, 8, 8)
    out = block.eval()(x)
    assert [name for name, _ in seen] == ["bn3", "attn"]
    torch.testing.assert_close(seen[1][1][0], seen[0][1])  # CA's input is bn3's output
    assert seen[1][1][1] is x  # and it adds the shortcut
    expected = F.relu(block.attn(seen[0][1]) + x)  # then the residual add and ReLU
    torch.testing.assert_close(out, expected)
    with torch.no_grad():  # in place in inference, the same sum
        torch.testing.assert_close(block(x.clone()), expected)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "ca_resnet18", "ca_resnet50"])
def test_inference_in_place_gives_the_training_formulation(arch):
    torch.manual_seed(2)
    model = build_model(arch, width=8).eval()
    for m in model.modules():  # undo the zero-init of the last BNs, so that every branch counts
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    sex = sex_tensor(["M", "F"])
    expected = model(x, sex)
    with torch.no_grad():
        torch.testing.assert_close(model(x, sex), expected, rtol=1e-5, atol=1e-5)


def test_sex_enters_the_head_beside_the_pooled_features():
    torch.manual_seed(1)
    model = build_model("ca_resnet18", width=8).eval()
    x = torch.randn(1, 1, 64, 64).repeat(3, 1, 1, 1)
    with torch.no_grad():
        out = model(x, sex_tensor(["M", "F", "O"]))
    assert model.head[0].in_features == model.num_features + 2
    assert len({round(float(v), 6) for v in out}) == 3


def test_avgmax_pooling_gives_the_head_each_channels_mean_and_maximum():
    torch.manual_seed(3)
    model = build_model("ca_resnet18", width=8, pool="avgmax").eval()
    features = torch.randn(2, model.num_features, 4, 4)
    pooled = model.pool(features)
    channels = model.num_features
    torch.testing.assert_close(pooled[:, :channels], features.mean(dim=(2, 3)))
    torch.testing.assert_close(pooled[:, channels:], features.amax(dim=(2, 3)))
    assert model.head[0].in_features == 2 * channels + 2
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64), sex_tensor(["M", "F"])).shape == (2,)
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        build_model("ca_resnet18", width=8, pool="median")


def test_a_checkpoint_rebuilds_the_pooling_its_card_names(tmp_path):
    """The card says how the head pools; a card written before pooling was a choice means
    the average (weights of one pooling do not fit the other's head: loading would fail)."""
    torch.manual_seed(4)
    model = build_model("ca_resnet18", width=8, pool="avgmax").eval()
    card = {"architecture": "ca_resnet18", "width": 8, "pool": "avgmax", "input_size": 64}
    checkpoint.save(tmp_path / "avgmax", model, card)
    loaded, loaded_card = checkpoint.load(tmp_path / "avgmax")
    assert (loaded.pooling, loaded_card["pool"]) == ("avgmax", "avgmax")
    x, sex = torch.randn(2, 1, 64, 64), sex_tensor(["M", "F"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, sex), model(x, sex))

    older = {"architecture": "ca_resnet18", "width": 8, "input_size": 64}
    checkpoint.save(tmp_path / "older", build_model("ca_resnet18", width=8), older)
    assert checkpoint.load(tmp_path / "older")[0].pooling == "avg"


@pytest.mark.train
def test_a_tiny_model_overfits_a_tiny_set():
    torch.manual_seed(0)
    model = build_model("ca_resnet18", width=8)
    x, sex = torch.randn(8, 1, 32, 32), sex_tensor(["M", "F"] * 4)
    y = torch.linspace(-1.5, 1.5, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(250):
        loss = F.l1_loss(model(x, sex), y)
        first = first if first is not None else float(loss.detach())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        final = float(F.l1_loss(model(x, sex), y))
    assert final < 0.15 * first, (first, final)
