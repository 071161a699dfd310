"""The fused Coordinate Attention (Triton kernels) against the PyTorch reference.

On a machine without a GPU the real kernels run under Triton's interpreter (`TRITON_INTERPRET=1`,
which Triton reads when the kernels are defined, hence a fresh interpreter process); the `gpu`
tests run the compiled kernels on CUDA."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inference_worker import fused_ca
from inference_worker.model import CoordAttention, build_model, sex_tensor

ROOT = Path(__file__).resolve().parents[2]
LOW_PRECISION = (torch.bfloat16, torch.float16)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _block(channels: int, dtype: torch.dtype, device: str) -> CoordAttention:
    torch.manual_seed(0)
    block = CoordAttention(channels, reduction=4)
    block.bn1.running_mean.uniform_(-0.5, 0.5)
    block.bn1.running_var.uniform_(0.5, 2.0)
    return block.to(device, torch.float64)


def _max_error(a: torch.Tensor, truth: torch.Tensor) -> float:
    return float((a.detach().double() - truth.detach()).abs().max())


def check_against_reference(
    device: str, dtype: torch.dtype, channels_last: bool, shape: tuple[int, ...], train: bool
) -> None:
    """Fused forward, input gradient, parameter gradients and the in-place inference path
    against the reference. fp32 within rounding; fp16 and bf16 no further from the float64
    reference than the reference computed in that dtype (twice its error, plus 1e-3)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    block64 = _block(shape[1], dtype, device).train(train)
    block = copy.deepcopy(block64).to(dtype)
    gen = torch.Generator().manual_seed(1)
    x64 = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    g64 = torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
    x = x64.to(dtype).contiguous(memory_format=fmt).requires_grad_()
    g = g64.to(dtype).contiguous(memory_format=fmt)
    x64 = x.detach().double().requires_grad_()  # the same (rounded) input for the truth

    def run(module, inp, grad_out, fused):
        out = fused_ca.coord_attention(module, inp) if fused else module.forward_reference(inp)
        grads = torch.autograd.grad(out, [inp, *module.parameters()], grad_out)
        return [out, *grads]

    truth = run(block64, x64, g.double(), fused=False)
    ref = run(block, x, g, fused=False)
    fused = run(block, x, g, fused=True)
    assert fused[0].dtype == dtype
    assert fused[0].is_contiguous(memory_format=fmt)
    names = ["output", "input grad", *(n for n, _ in block.named_parameters())]
    for name, t, r, f in zip(names, truth, ref, fused, strict=True):
        if dtype == torch.float32:
            torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5, msg=name)
        else:
            bound = 2 * _max_error(r, t) + 1e-3
            assert _max_error(f, t) <= bound, (name, _max_error(f, t), bound)

    block.eval()
    block64.eval()
    with torch.no_grad():
        truth = block64.forward_reference(x64.detach().clone())
        expected = block.forward_reference(x.detach().clone())
        inplace = x.detach().clone()
        result = fused_ca.coord_attention(block, inplace)
    assert result.data_ptr() == inplace.data_ptr()
    if dtype == torch.float32:
        torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-5)
    else:
        assert _max_error(result, truth) <= 2 * _max_error(expected, truth) + 1e-3


def check_all_interpreted() -> None:
    """Run in a process with TRITON_INTERPRET=1: small shapes, every layout and dtype. 80
    channels and a 5 x 7 map leave partial channel and column tiles and two row splits."""
    for dtype in (torch.float32, *LOW_PRECISION):
        for channels_last in (False, True):
            for train in (True, False):
                check_against_reference("cpu", dtype, channels_last, (2, 80, 5, 7), train)
    print("interpreted kernels match the reference")


@pytest.mark.slow
def test_the_triton_kernels_match_the_reference_under_the_interpreter_on_the_cpu():
    pytest.importorskip("triton")
    proc = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [
            sys.executable,
            "-c",
            "from tests.inference_worker.test_fused_ca import check_all_interpreted as c; c()",
        ],
        cwd=ROOT,
        env={**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "interpreted kernels match the reference" in proc.stdout


def test_the_cpu_takes_the_reference_path():
    block = _block(32, torch.float32, "cpu").float().eval()
    x = torch.randn(2, 32, 6, 5)
    assert not fused_ca.usable(x)
    with torch.no_grad():
        torch.testing.assert_close(block(x.clone()), block.forward_reference(x.clone()))


def test_without_triton_the_model_imports_and_takes_the_reference():
    code = (
        "import sys; sys.modules['triton'] = None\n"  # as on a CPU-only torch wheel
        "import torch\n"
        "from inference_worker import fused_ca\n"
        "from inference_worker.model import build_model, sex_tensor\n"
        "assert fused_ca.triton is None and not fused_ca.available()\n"
        "model = build_model('ca_resnet18', width=8).eval()\n"
        "print(model(torch.randn(2, 1, 32, 32), sex_tensor(['M', 'F'])).shape)\n"
    )
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torch.Size([2])" in proc.stdout


def test_inference_fused_ca_0_switches_the_fast_path_off(monkeypatch):
    monkeypatch.setenv(fused_ca.ENV_SWITCH, "0")
    assert not fused_ca.available()
    monkeypatch.setenv(fused_ca.ENV_SWITCH, "1")
    assert fused_ca.available() == (fused_ca.triton is not None)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_triton_kernels_match_the_reference_on_cuda(dtype, channels_last):
    assert fused_ca.usable(torch.empty(1, 1, 1, 1, device="cuda"))
    # 160 channels and odd sides: partial tiles; 130 columns: wider than one tile row
    for shape in [(3, 160, 33, 21), (2, 64, 9, 130)]:
        for train in (True, False):
            check_against_reference("cuda", dtype, channels_last, shape, train)


@pytest.mark.gpu
@needs_cuda
def test_a_ca_resnet_on_cuda_gives_the_reference_ages_and_gradients_under_bf16_autocast(
    monkeypatch,
):
    torch.manual_seed(0)
    model = build_model("ca_resnet50", width=16).cuda().to(memory_format=torch.channels_last)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)  # the last BN of each block starts at zero
    state = copy.deepcopy(model.state_dict())
    x = torch.randn(4, 1, 128, 128, device="cuda").contiguous(memory_format=torch.channels_last)
    sex = sex_tensor(["M", "F", "O", "M"], "cuda")

    def ages_and_grads(enabled: str):
        monkeypatch.setenv(fused_ca.ENV_SWITCH, enabled)
        model.load_state_dict(state)
        model.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            ages = model(x, sex)
        ages.float().sum().backward()
        return ages.float(), model.stem[0].weight.grad.clone()

    fused_ages, fused_grad = ages_and_grads("1")
    ref_ages, ref_grad = ages_and_grads("0")
    assert model.state_dict().keys() == state.keys()
    torch.testing.assert_close(fused_ages, ref_ages, rtol=0.05, atol=0.05)
    cosine = torch.nn.functional.cosine_similarity(fused_grad.flatten(), ref_grad.flatten(), 0)
    assert cosine > 0.98, float(cosine)


@pytest.mark.gpu
@needs_cuda
def test_torch_compile_accepts_the_kernels_and_gives_the_eager_result():
    block = _block(64, torch.float32, "cuda").float().eval()
    x = torch.randn(2, 64, 16, 24, device="cuda").contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(lambda t: fused_ca.coord_attention(block, t), fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x.clone()), block.forward_reference(x.clone()))
    x.requires_grad_()
    (gx,) = torch.autograd.grad(compiled(x).square().sum(), x)
    (rx,) = torch.autograd.grad(block.forward_reference(x).square().sum(), x)
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-5)
