"""Fused Coordinate Attention for CUDA: Triton kernels for the two passes over the feature map.

The PyTorch `CoordAttention` reads its input twice to pool it (once per direction) and the
multiply by both maps reads and writes it twice more, plus autograd's temporaries in training. On a
GPU these passes are memory-bound and cost as much as the rest of the ResNet (issue 10). Here:

- `ca_pool` reads the input once and gives both directional means (N x C x H over W, N x C x W
  over H, Hou et al. 2021, Eqs. 2-3);
- `ca_apply` reads and writes it once: out = x * a_h[..., None] * a_w[..., None, :] (Eq. 7);
- their backward passes are kernels too: one pass over (grad, x) gives the input's gradient and
  both maps' gradients; the pool's gradient is one broadcast write.

They are `torch.library.triton_op`s, so eager mode runs them directly and `torch.compile` sees
the kernels instead of graph-breaking. The small network between them (1x1 convs, BN, h-swish)
stays the module's own, so the weights and state dict are the reference's. Every kernel takes
the tensors' strides: channels-last and contiguous inputs alike; fp32, fp16 and bf16 inputs,
with fp32 accumulation.

Import-safe without Triton (`available()` is then False and the model uses the reference).
`TRITON_INTERPRET=1` runs the same kernels on CPU tensors (how the tests check them here).
"""

import os

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except ImportError:  # a CPU-only torch wheel ships without Triton
    triton = None

ENV_SWITCH = "INFERENCE_FUSED_CA"
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Elements one program holds in registers (a tile of channels x columns).
_TILE = 4096


def available() -> bool:
    """Triton can be imported and the operator has not been switched off."""
    return triton is not None and os.environ.get(ENV_SWITCH, "1") != "0"


def usable(x: Tensor) -> bool:
    """The fast path runs on CUDA tensors of a supported dtype; anything else (the CPU, or
    `INFERENCE_FUSED_CA=0`) takes the PyTorch reference."""
    return x.is_cuda and x.dim() == 4 and x.dtype in DTYPES and available()


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _row_tiles(c: int, w: int) -> tuple[int, int]:
    """Channel and column block for kernels that hold a whole row (all of W) per program."""
    block_w = _pow2(w)
    block_c = max(1, min(_pow2(c), _TILE // block_w, 64))
    return block_c, block_w


def _warps(block_c: int, block_w: int) -> int:
    """The row kernels keep a whole tile (and, backward, four) in registers: more warps for
    large tiles keep them from spilling."""
    return 8 if block_c * block_w >= 2048 else 4


def _splits(n: int, c_blocks: int, h: int, device: torch.device) -> int:
    """Row splits per (image, channel block) so that there are a few programs per SM; partial
    column sums are added afterwards, in a fixed order (deterministic, no atomics)."""
    if device.type != "cuda":
        return min(h, 2)  # the interpreter: exercise the split path, stay small
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(h, (4 * sms + n * c_blocks - 1) // (n * c_blocks), 16))


if triton is not None:

    @triton.jit
    def _pool_kernel(
        x_ptr, ph_ptr, pw_ptr,
        C, H, W, rows_per_split,
        sxn, sxc, sxh, sxw,
        inv_w,
        BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
    ):  # fmt: skip
        """One (image, channel block, row split): each row's mean over W is stored, the rows'
        sums per column are kept in registers and stored as this split's partial sum."""
        n = tl.program_id(0).to(tl.int64)
        cb = tl.program_id(1)
        split = tl.program_id(2)
        offs_c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_w = tl.arange(0, BLOCK_W)
        mask = (offs_c[:, None] < C) & (offs_w[None, :] < W)
        base = x_ptr + n * sxn + offs_c[:, None] * sxc + offs_w[None, :] * sxw
        acc = tl.zeros((BLOCK_C, BLOCK_W), dtype=tl.float32)
        h_start = split * rows_per_split
        h_end = tl.minimum(h_start + rows_per_split, H)
        for h in range(h_start, h_end):
            tile = tl.load(base + h * sxh, mask=mask, other=0.0).to(tl.float32)
            acc += tile
            row = tl.sum(tile, axis=1) * inv_w
            tl.store(ph_ptr + (n * C + offs_c) * H + h, row, mask=offs_c < C)
        split_base = (split * tl.num_programs(0) + n) * C
        tl.store(pw_ptr + (split_base + offs_c[:, None]) * W + offs_w[None, :], acc, mask=mask)

    @triton.jit
    def _row_tile(C, H, W, BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr):
        """This program's image n, row h, channel and column offsets and their masks, for the
        elementwise kernels' grid (N * H, channel tiles, column tiles)."""
        nh = tl.program_id(0)
        offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_w = tl.program_id(2) * BLOCK_W + tl.arange(0, BLOCK_W)
        mask_c = offs_c < C
        return (
            (nh // H).to(tl.int64),
            nh % H,
            offs_c,
            offs_w,
            mask_c,
            mask_c[:, None] & (offs_w[None, :] < W),
        )

    @triton.jit
    def _apply_kernel(
        x_ptr, ah_ptr, aw_ptr, out_ptr,
        C, H, W,
        sxn, sxc, sxh, sxw,
        son, soc, soh, sow,
        shn, shc, shh,
        swn, swc, sww,
        BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
    ):  # fmt: skip
        """out[n, c, h, w] = x[n, c, h, w] * a_h[n, c, h] * a_w[n, c, w] for one tile of one row."""
        n, h, offs_c, offs_w, mask_c, mask = _row_tile(C, H, W, BLOCK_C, BLOCK_W)
        x = tl.load(
            x_ptr + n * sxn + h * sxh + offs_c[:, None] * sxc + offs_w[None, :] * sxw,
            mask=mask,
            other=0.0,
        ).to(tl.float32)
        a_h = tl.load(ah_ptr + n * shn + h * shh + offs_c * shc, mask=mask_c).to(tl.float32)
        a_w = tl.load(
            aw_ptr + n * swn + offs_c[:, None] * swc + offs_w[None, :] * sww, mask=mask
        ).to(tl.float32)
        out = x * a_h[:, None] * a_w
        tl.store(
            out_ptr + n * son + h * soh + offs_c[:, None] * soc + offs_w[None, :] * sow,
            out.to(out_ptr.dtype.element_ty),
            mask=mask,
        )

    @triton.jit
    def _apply_backward_kernel(
        g_ptr, x_ptr, ah_ptr, aw_ptr, gx_ptr, gah_ptr, gaw_ptr,
        C, H, W, rows_per_split,
        sgn, sgc, sgh, sgw,
        sxn, sxc, sxh, sxw,
        son, soc, soh, sow,
        shn, shc, shh,
        swn, swc, sww,
        BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
    ):  # fmt: skip
        """One pass over (grad, x): grad_x = g * a_h * a_w; grad_a_h[h] = sum_w g * x * a_w;
        grad_a_w[w] = sum_h g * x * a_h (partial per row split, as in the pool kernel)."""
        n = tl.program_id(0).to(tl.int64)
        cb = tl.program_id(1)
        split = tl.program_id(2)
        offs_c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
        offs_w = tl.arange(0, BLOCK_W)
        mask_c = offs_c < C
        mask = mask_c[:, None] & (offs_w[None, :] < W)
        g_base = g_ptr + n * sgn + offs_c[:, None] * sgc + offs_w[None, :] * sgw
        x_base = x_ptr + n * sxn + offs_c[:, None] * sxc + offs_w[None, :] * sxw
        o_base = gx_ptr + n * son + offs_c[:, None] * soc + offs_w[None, :] * sow
        a_w = tl.load(
            aw_ptr + n * swn + offs_c[:, None] * swc + offs_w[None, :] * sww, mask=mask, other=0.0
        ).to(tl.float32)
        acc = tl.zeros((BLOCK_C, BLOCK_W), dtype=tl.float32)
        h_start = split * rows_per_split
        h_end = tl.minimum(h_start + rows_per_split, H)
        for h in range(h_start, h_end):
            g = tl.load(g_base + h * sgh, mask=mask, other=0.0).to(tl.float32)
            x = tl.load(x_base + h * sxh, mask=mask, other=0.0).to(tl.float32)
            a_h = tl.load(ah_ptr + n * shn + h * shh + offs_c * shc, mask=mask_c).to(tl.float32)
            gx = g * a_h[:, None] * a_w
            tl.store(o_base + h * soh, gx.to(gx_ptr.dtype.element_ty), mask=mask)
            gxa = g * x
            tl.store(gah_ptr + (n * C + offs_c) * H + h, tl.sum(gxa * a_w, axis=1), mask=mask_c)
            acc += gxa * a_h[:, None]
        split_base = (split * tl.num_programs(0) + n) * C
        tl.store(gaw_ptr + (split_base + offs_c[:, None]) * W + offs_w[None, :], acc, mask=mask)

    @triton.jit
    def _broadcast_add_kernel(
        bh_ptr, bw_ptr, out_ptr,
        C, H, W,
        son, soc, soh, sow,
        BLOCK_C: tl.constexpr, BLOCK_W: tl.constexpr,
    ):  # fmt: skip
        """out[n, c, h, w] = b_h[n, c, h] + b_w[n, c, w] (b_* contiguous fp32): the pool's
        gradient written once in the input's layout."""
        n, h, offs_c, offs_w, mask_c, mask = _row_tile(C, H, W, BLOCK_C, BLOCK_W)
        b_h = tl.load(bh_ptr + (n * C + offs_c) * H + h, mask=mask_c, other=0.0)
        b_w = tl.load(bw_ptr + (n * C + offs_c[:, None]) * W + offs_w[None, :], mask=mask)
        tl.store(
            out_ptr + n * son + h * soh + offs_c[:, None] * soc + offs_w[None, :] * sow,
            (b_h[:, None] + b_w).to(out_ptr.dtype.element_ty),
            mask=mask,
        )

    def _tile_tiles(out: Tensor) -> tuple[int, int]:
        """Channel and column block for the elementwise kernels: wide along the dimension that
        is contiguous in memory (C for channels-last, W otherwise), so loads coalesce."""
        _, c, _, w = out.shape
        if out.stride(1) == 1 and out.stride(3) != 1:
            block_c = min(_pow2(c), 128)
            return block_c, min(_pow2(w), max(1, 1024 // block_c))
        block_w = min(_pow2(w), 128)
        return min(_pow2(c), max(1, 1024 // block_w)), block_w

    def _elementwise_grid(out: Tensor, block_c: int, block_w: int) -> tuple[int, int, int]:
        n, c, h, w = out.shape
        return (n * h, triton.cdiv(c, block_c), triton.cdiv(w, block_w))

    @triton_op("cxr_age::ca_pool", mutates_args=())
    def ca_pool(x: Tensor) -> tuple[Tensor, Tensor]:
        """Both directional means of x (N x C x H x W) in one read: (N x C x H, N x C x W)."""
        n, c, h, w = x.shape
        block_c, block_w = _row_tiles(c, w)
        c_blocks = triton.cdiv(c, block_c)
        splits = _splits(n, c_blocks, h, x.device)
        rows = triton.cdiv(h, splits)
        splits = triton.cdiv(h, rows)
        pooled_h = torch.empty((n, c, h), device=x.device, dtype=torch.float32)
        partial_w = torch.empty((splits, n, c, w), device=x.device, dtype=torch.float32)
        wrap_triton(_pool_kernel)[(n, c_blocks, splits)](
            x, pooled_h, partial_w, c, h, w, rows, *x.stride(), 1.0 / w,
            BLOCK_C=block_c, BLOCK_W=block_w, num_warps=_warps(block_c, block_w),
        )  # fmt: skip
        pooled_w = partial_w.sum(dim=0) / h
        return pooled_h.to(x.dtype), pooled_w.to(x.dtype)

    @triton_op("cxr_age::ca_pool_backward", mutates_args=())
    def ca_pool_backward(grad_h: Tensor, grad_w: Tensor, channels_last: bool) -> Tensor:
        """Gradient of `ca_pool` for its input (N x C x H x W, channels-last or contiguous)."""
        n, c, h = grad_h.shape
        w = grad_w.shape[2]
        b_h = (grad_h.float() / w).contiguous()
        b_w = (grad_w.float() / h).contiguous()
        out = torch.empty(
            (n, c, h, w),
            dtype=grad_h.dtype,
            device=grad_h.device,
            memory_format=torch.channels_last if channels_last else torch.contiguous_format,
        )
        block_c, block_w = _tile_tiles(out)
        wrap_triton(_broadcast_add_kernel)[_elementwise_grid(out, block_c, block_w)](
            b_h, b_w, out, c, h, w, *out.stride(), BLOCK_C=block_c, BLOCK_W=block_w
        )
        return out

    def _launch_apply(x: Tensor, a_h: Tensor, a_w: Tensor, out: Tensor) -> None:
        block_c, block_w = _tile_tiles(out)
        wrap_triton(_apply_kernel)[_elementwise_grid(out, block_c, block_w)](
            x, a_h, a_w, out, *x.shape[1:], *x.stride(), *out.stride(), *a_h.stride(),
            *a_w.stride(), BLOCK_C=block_c, BLOCK_W=block_w,
        )  # fmt: skip

    @triton_op("cxr_age::ca_apply", mutates_args=())
    def ca_apply(x: Tensor, a_h: Tensor, a_w: Tensor) -> Tensor:
        """x * a_h[..., None] * a_w[..., None, :] in one read and one write, in x's layout."""
        out = torch.empty_like(x)
        _launch_apply(x, a_h, a_w, out)
        return out

    @triton_op("cxr_age::ca_apply_", mutates_args={"x"})
    def ca_apply_(x: Tensor, a_h: Tensor, a_w: Tensor) -> None:
        """`ca_apply` in place, for inference (the input is the block's fresh BN output)."""
        _launch_apply(x, a_h, a_w, x)

    @triton_op("cxr_age::ca_apply_backward", mutates_args=())
    def ca_apply_backward(
        grad: Tensor, x: Tensor, a_h: Tensor, a_w: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Gradients of `ca_apply` for x, a_h and a_w from one pass over (grad, x)."""
        n, c, h, w = x.shape
        block_c, block_w = _row_tiles(c, w)
        c_blocks = triton.cdiv(c, block_c)
        splits = _splits(n, c_blocks, h, x.device)
        rows = triton.cdiv(h, splits)
        splits = triton.cdiv(h, rows)
        grad_x = torch.empty_like(x)
        grad_h = torch.empty((n, c, h), device=x.device, dtype=torch.float32)
        partial_w = torch.empty((splits, n, c, w), device=x.device, dtype=torch.float32)
        wrap_triton(_apply_backward_kernel)[(n, c_blocks, splits)](
            grad, x, a_h, a_w, grad_x, grad_h, partial_w, c, h, w, rows,
            *grad.stride(), *x.stride(), *grad_x.stride(), *a_h.stride(), *a_w.stride(),
            BLOCK_C=block_c, BLOCK_W=block_w, num_warps=_warps(block_c, block_w),
        )  # fmt: skip
        return grad_x, grad_h.to(a_h.dtype), partial_w.sum(dim=0).to(a_w.dtype)

    def _pool_setup(ctx, inputs, output) -> None:
        # Only x's layout is needed for its gradient, not its values.
        ctx.channels_last = _channels_last(inputs[0])

    def _pool_backward(ctx, grad_h: Tensor, grad_w: Tensor) -> Tensor:
        return ca_pool_backward(grad_h, grad_w, ctx.channels_last)

    def _apply_setup(ctx, inputs, output) -> None:
        ctx.save_for_backward(*inputs)

    def _apply_backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, a_h, a_w = ctx.saved_tensors
        return ca_apply_backward(grad, x, a_h, a_w)

    ca_pool.register_autograd(_pool_backward, setup_context=_pool_setup)
    ca_apply.register_autograd(_apply_backward, setup_context=_apply_setup)


def coord_attention(module, x: Tensor) -> Tensor:
    """`module` (a `CoordAttention`) applied to x through the kernels: pool, the module's own
    small network on the pooled means, apply; in place when no gradient is recorded."""
    pooled_h, pooled_w = torch.ops.cxr_age.ca_pool(x)
    a_h, a_w = module.attention_maps(pooled_h, pooled_w, channels_last=_channels_last(x))
    if torch.is_grad_enabled():
        return torch.ops.cxr_age.ca_apply(x, a_h, a_w)
    torch.ops.cxr_age.ca_apply_(x, a_h, a_w)
    return x


def _channels_last(x: Tensor) -> bool:
    """Channels innermost in memory (a 1 x 1 map counts as contiguous), as the model decides."""
    return x.stride(1) < x.stride(3)
