"""CA-ResNet: a torchvision-style ResNet with a Coordinate Attention block in every residual block,
one input channel, and the child's sex entering beside the pooled features of a regression head.

Coordinate Attention follows Hou, Zhou and Feng, "Coordinate Attention for Efficient Mobile Network
Design" (CVPR 2021), Fig. 2(c) and Eqs. 4-9; its place in the block follows Li et al. (2025) and
DESIGN.md: after the last BatchNorm, before the residual add.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from inference_worker import fused_ca

# The head's global pooling of the last stage: "avg" (a ResNet's own), or "avgmax", the mean and
# the maximum of each channel side by side, which also tells the head how strongly a channel
# fires at its strongest place (a small structure's size or ossification), not only on average.
# On the phantoms it took the demo model from 12.0 to 11.7 months held out (bench/RESULTS.md).
POOLS = {"avg": 1, "avgmax": 2}  # statistics per channel

# Sex encoding beside the pooled features: [male, female]; other or unknown is [0, 0].
SEX_CODES = {"M": (1.0, 0.0), "F": (0.0, 1.0), "O": (0.0, 0.0)}
SEX_FEATURES = 2


def sex_tensor(sexes: list[str], device: torch.device | str = "cpu") -> Tensor:
    return torch.tensor([SEX_CODES.get(s, SEX_CODES["O"]) for s in sexes], device=device)


class CoordAttention(nn.Module):
    """Pool along H and along W, concatenate, 1x1 conv to max(8, C // r) channels, BN, h-swish,
    split, one 1x1 conv + sigmoid per direction, multiply the input by both attention maps.

    On CUDA the two passes over the feature map run as Triton kernels (`fused_ca`); everywhere
    else, or with INFERENCE_FUSED_CA=0, `forward_reference` does. Both use this module's
    parameters through `attention_maps`, so the state dict is the same either way."""

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, kernel_size=1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.Hardswish()  # x * ReLU6(x + 3) / 6 (Howard et al. 2019), as Hou et al.
        self.conv_h = nn.Conv2d(mid, channels, kernel_size=1)
        self.conv_w = nn.Conv2d(mid, channels, kernel_size=1)

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        """x reweighted (Eq. 7); with `identity`, plus the residual block's shortcut. Off CUDA
        the second reweighting and that sum are one pass (`addcmul`), written over x in
        inference: each pass over a full-size map is a large part of what CA adds on a CPU."""
        if fused_ca.usable(x):
            return _add(fused_ca.coord_attention(self, x), identity)
        if identity is None:
            return self.forward_reference(x)
        a_h, a_w = self._maps(x)
        if torch.is_grad_enabled():
            return torch.addcmul(identity, x * a_h, a_w)
        return torch.addcmul(identity, x.mul_(a_h), a_w, out=x)

    def forward_reference(self, x: Tensor) -> Tensor:
        """The PyTorch formulation, the reference the fused kernels are tested against."""
        a_h, a_w = self._maps(x)
        if torch.is_grad_enabled():
            return x * a_h * a_w  # Eq. 7
        # Inference: reweight in place; the input is the fresh output of the block's last BN,
        # and two full-size temporaries are most of what CA costs on a CPU.
        return x.mul_(a_h).mul_(a_w)

    def _maps(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both attention maps, broadcastable against x: N x C x H x 1 and N x C x 1 x W."""
        _, _, h, w = x.shape
        channels_last = _channels_last(x)
        if channels_last:
            # N x H x W x C in memory: both means reduce along contiguous rows (on a CPU faster
            # than adaptive pooling, most of all for the small maps of the late stages).
            rows = x.permute(0, 2, 3, 1)
            pooled_h, pooled_w = rows.mean(2).transpose(1, 2), rows.mean(1).transpose(1, 2)
        else:
            pooled_h = F.adaptive_avg_pool2d(x, (h, 1)).flatten(2)  # N x C x H  (Eq. 2)
            pooled_w = F.adaptive_avg_pool2d(x, (1, w)).flatten(2)  # N x C x W  (Eq. 3)
        a_h, a_w = self.attention_maps(pooled_h, pooled_w, channels_last=channels_last)
        return a_h.unsqueeze(3), a_w.unsqueeze(2)

    def attention_maps(
        self, pooled_h: Tensor, pooled_w: Tensor, *, channels_last: bool
    ) -> tuple[Tensor, Tensor]:
        """Eqs. 4-6: the directional means (N x C x H, N x C x W) to the attention maps of the
        same shapes. The 1x1 convs run as matrix products over N x (H + W) x C and the BN over
        N (H + W) x mid x 1 x 1 (the same weights and statistics; on a CPU a convolution call
        on these thin tensors costs more than its arithmetic). With a channels-last input the
        maps come out channels-innermost, so that the multiply runs along contiguous memory in
        the input and both maps (on a CPU 4 to 6 times faster than maps whose channels are
        strided); otherwise contiguous."""
        n, h, w = pooled_h.shape[0], pooled_h.shape[2], pooled_w.shape[2]
        if channels_last:
            pooled = torch.cat([pooled_h.transpose(1, 2), pooled_w.transpose(1, 2)], dim=1)
        else:
            pooled = torch.cat([pooled_h, pooled_w], dim=2).transpose(1, 2)  # N x (H + W) x C
        y = F.linear(pooled, self.conv1.weight.flatten(1), self.conv1.bias)  # Eq. 4
        y = self.act(self.bn1(y.reshape(n * (h + w), -1, 1, 1))).view(n, h + w, -1)
        y_h, y_w = torch.split(y, [h, w], dim=1)
        a_h = torch.sigmoid(F.linear(y_h, self.conv_h.weight.flatten(1), self.conv_h.bias))
        a_w = torch.sigmoid(F.linear(y_w, self.conv_w.weight.flatten(1), self.conv_w.bias))
        a_h, a_w = a_h.transpose(1, 2), a_w.transpose(1, 2)  # Eqs. 5-6, N x C x H and N x C x W
        if channels_last:
            return a_h, a_w
        return a_h.contiguous(), a_w.contiguous()


def _channels_last(x: Tensor) -> bool:
    """Channels innermost in memory (a 1 x 1 map counts as contiguous)."""
    return x.stride(1) < x.stride(3)


class NoAttention(nn.Module):
    """The plain ResNet's place for CA: the branch plus the shortcut, written over the branch's
    fresh output in inference as CA's is, so that the two networks differ only by CA."""

    def forward(self, x: Tensor, identity: Tensor | None = None) -> Tensor:
        return _add(x, identity)


def _add(x: Tensor, identity: Tensor | None) -> Tensor:
    """x plus the shortcut, if any: in place over x (a block's fresh output) in inference."""
    if identity is None:
        return x
    return x + identity if torch.is_grad_enabled() else x.add_(identity)


AttnLayer = Callable[[int], nn.Module] | None


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, planes: int, stride: int, downsample: nn.Module | None, attn: AttnLayer
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = attn(planes) if attn else NoAttention()
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.attn(self.bn2(self.conv2(out)), identity))  # CA after the last BN


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, cin: int, planes: int, stride: int, downsample: nn.Module | None, attn: AttnLayer
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.attn = attn(out_channels) if attn else NoAttention()
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.attn(self.bn3(self.conv3(out)), identity))  # CA after bn3


class ResNet(nn.Module):
    """Backbone (`forward_features`) and age head (`forward_head`) split, so that Grad-CAM and
    embeddings reuse the backbone without editing it."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        *,
        width: int = 64,
        in_chans: int = 1,
        attn_layer: AttnLayer = None,
        head_hidden: int = 256,
        drop_rate: float = 0.2,
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pooling {pool!r}; one of {', '.join(POOLS)}")
        self.pooling = pool
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.cin = width
        stages = []
        for i, blocks in enumerate(layers):
            stages.append(self._stage(block, width * 2**i, blocks, 1 if i == 0 else 2, attn_layer))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.cin  # channels of the last stage
        self.head = nn.Sequential(
            nn.Linear(self.num_features * POOLS[pool] + SEX_FEATURES, head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(head_hidden, 1),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch (Goyal et al. 2017), as torchvision does.
        for m in self.modules():
            last_bn = getattr(m, "bn3", None) or getattr(m, "bn2", None)
            if isinstance(m, BasicBlock | Bottleneck) and last_bn is not None:
                nn.init.zeros_(last_bn.weight)

    def _stage(
        self, block, planes: int, blocks: int, stride: int, attn: AttnLayer
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.cin != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.cin, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.cin, planes, stride, downsample, attn)]
        self.cin = planes * block.expansion
        layers += [block(self.cin, planes, 1, None, attn) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature map, N x C x h x w (Grad-CAM's target layer)."""
        return self.stages(self.stem(x))

    def pool(self, features: Tensor) -> Tensor:
        """N x (C times the pooling's statistics): each statistic's C channels in turn."""
        mean = features.mean(dim=(2, 3))
        if self.pooling == "avg":
            return mean
        return torch.cat([mean, features.amax(dim=(2, 3))], dim=1)

    def forward_head(self, pooled: Tensor, sex: Tensor) -> Tensor:
        """Age on the normalised scale from pooled features and the sex encoding."""
        return self.head(torch.cat([pooled, sex.to(pooled.dtype)], dim=1)).squeeze(1)

    def forward(self, x: Tensor, sex: Tensor) -> Tensor:
        return self.forward_head(self.pool(self.forward_features(x)), sex)


_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
}


def _build(depth: int, attention: bool, **kwargs) -> ResNet:
    block, layers = _DEPTHS[depth]
    attn = partial(CoordAttention, reduction=kwargs.pop("reduction", 32)) if attention else None
    return ResNet(block, layers, attn_layer=attn, **kwargs)


def ca_resnet18(**kwargs) -> ResNet:
    return _build(18, True, **kwargs)


def ca_resnet34(**kwargs) -> ResNet:
    return _build(34, True, **kwargs)


def ca_resnet50(**kwargs) -> ResNet:
    return _build(50, True, **kwargs)


def ca_resnet101(**kwargs) -> ResNet:
    return _build(101, True, **kwargs)


def resnet18(**kwargs) -> ResNet:
    return _build(18, False, **kwargs)


def resnet34(**kwargs) -> ResNet:
    return _build(34, False, **kwargs)


def resnet50(**kwargs) -> ResNet:
    return _build(50, False, **kwargs)


def resnet101(**kwargs) -> ResNet:
    return _build(101, False, **kwargs)


ARCHITECTURES: dict[str, Callable[..., ResNet]] = {
    f.__name__: f
    for f in (
        ca_resnet18,
        ca_resnet34,
        ca_resnet50,
        ca_resnet101,
        resnet18,
        resnet34,
        resnet50,
        resnet101,
    )
}


def build_model(arch: str, **kwargs) -> ResNet:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
