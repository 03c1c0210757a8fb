"""SDSA forward in Triton, parallel over token tiles: ``O = q * LIF_{v_th}(sum_N(k * v))``.

Two kernels (a two-phase reduction; the [T, B, H, 1, d] kv tensor of the reference is never
formed as such):

1. ``_sdsa_kv_kernel``, grid (T * B * H, NT = cdiv(N, BLOCK_N)): each program sums k * v over
   one tile of BLOCK_N tokens for all d channels and writes the partial sum to a small fp32
   buffer P [T * B * H, NT, d].
2. ``_sdsa_out_kernel``, grid (B * H, NT): each program walks the T timesteps; per step it
   adds the NT partial sums of its (b, h) in tile order (the same order in every program, so
   all programs see the same kv), runs the talking-heads LIF exactly as
   ``stc.kernels.lif.reference`` does (H = V + (X - (V - 0)) / tau, tau = 2, with
   ``tl.math.div_rn``; S = (H - v_th >= 0); hard reset to 0), and writes q * S for its token
   tile. The LIF over T (d values per step) is recomputed by each of the NT programs of a
   head, a few hundred flops, instead of a third launch.

At batch 1 with N = 196 tokens and BLOCK_N = 32 a Spikformer-8-384 layer runs 8 * 7 programs
per phase instead of 8 (the old grid (B * H, d / 32) had serial loops over T and N).

Layout: q, k, v and O are addressed through (t, b, h, n) element strides (channel stride 1),
so [T, B, N, H * d] token tensors are used in place; O has q's layout and dtype. Offsets are
int64. Exactness: products and token sums of integers are exact in fp32, so spikes and
outputs equal ``reference.sdsa_reference`` bit for bit for integer inputs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..._backend import triton_interpreted
from .._launch import as_heads, block_dim, empty_out, finish, head_strides
from .reference import SDSA_TAU, SDSA_V_RESET


def sdsa_config(d: int, interpreted: bool | None = None) -> dict:
    """Launch config for head dim d: BLOCK_N, BLOCK_D, num_warps."""
    interpreted = triton_interpreted() if interpreted is None else interpreted
    bd = block_dim(d)
    if interpreted:
        return {"BLOCK_N": 64, "BLOCK_D": bd, "num_warps": 4}
    return {"BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 4 if bd <= 64 else 8}


@triton.jit
def _sdsa_kv_kernel(k_ptr, v_ptr, p_ptr,
                    k_stride_t, k_stride_b, k_stride_h, k_stride_n,
                    v_stride_t, v_stride_b, v_stride_h, v_stride_n,
                    B, H, N,
                    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)           # (t * B + b) * H + h
    tile = tl.program_id(1)
    h = (pid % H).to(tl.int64)
    tb = pid // H
    b = (tb % B).to(tl.int64)
    t = (tb // B).to(tl.int64)
    offs_n = tile * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = offs_n.to(tl.int64)[:, None]
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    mask = (offs_n < N)[:, None] & mask_d[None, :]
    kb = t * k_stride_t + b * k_stride_b + h * k_stride_h
    vb = t * v_stride_t + b * v_stride_b + h * v_stride_h
    k = tl.load(k_ptr + kb + rows * k_stride_n + offs_d[None, :], mask=mask, other=0.0)
    v = tl.load(v_ptr + vb + rows * v_stride_n + offs_d[None, :], mask=mask, other=0.0)
    part = tl.sum(k.to(tl.float32) * v.to(tl.float32), axis=0)
    nt = tl.num_programs(1)
    dst = (pid.to(tl.int64) * nt + tile) * D + offs_d
    tl.store(p_ptr + dst, part, mask=mask_d)


@triton.jit
def _sdsa_out_kernel(q_ptr, p_ptr, o_ptr,
                     q_stride_t, q_stride_b, q_stride_h, q_stride_n,
                     o_stride_t, o_stride_b, o_stride_h, o_stride_n,
                     T, B, H, N, tau, v_th, v_reset,
                     D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(0)            # b * H + h
    tile = tl.program_id(1)
    nt = tl.num_programs(1)
    h = (bh % H).to(tl.int64)
    b = (bh // H).to(tl.int64)
    offs_n = tile * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = offs_n.to(tl.int64)[:, None]
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    mask = (offs_n < N)[:, None] & mask_d[None, :]
    qb = b * q_stride_b + h * q_stride_h + rows * q_stride_n + offs_d[None, :]
    ob = b * o_stride_b + h * o_stride_h + rows * o_stride_n + offs_d[None, :]
    mem = tl.zeros((BLOCK_D,), dtype=tl.float32) + v_reset
    for t in range(0, T):
        t64 = (bh * 0 + t).to(tl.int64)
        src = ((t64 * B * H + bh) * nt) * D + offs_d
        x = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for i in range(0, nt):
            x += tl.load(p_ptr + src + i * D, mask=mask_d, other=0.0)
        hh = mem + tl.math.div_rn(x - (mem - v_reset), tau)
        s = tl.where(hh - v_th >= 0.0, 1.0, 0.0)
        mem = hh * (1.0 - s) + v_reset * s
        q = tl.load(q_ptr + t64 * q_stride_t + qb, mask=mask, other=0.0).to(tl.float32)
        tl.store(o_ptr + t64 * o_stride_t + ob, (q * s[None, :]).to(o_ptr.dtype.element_ty),
                 mask=mask)


def sdsa_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, v_th: float) -> torch.Tensor:
    """Launch the two SDSA kernels on ``[T, B, H, N, d]`` tensors (any strides with channel
    stride 1); returns O in q's dtype and memory layout."""
    q, k, v = as_heads(q), as_heads(k), as_heads(v)
    T, B, H, N, d = q.shape
    cfg = sdsa_config(d)
    nt = triton.cdiv(N, cfg["BLOCK_N"])
    partial = torch.empty((T * B * H, nt, d), device=q.device, dtype=torch.float32)
    _sdsa_kv_kernel[(T * B * H, nt)](
        k, v, partial, *head_strides(k), *head_strides(v), B, H, N, D=d, **cfg)
    out = empty_out(q)
    _sdsa_out_kernel[(B * H, nt)](
        q, partial, out, *head_strides(q), *head_strides(out), T, B, H, N, float(SDSA_TAU),
        float(v_th), float(SDSA_V_RESET), D=d, **cfg)
    return finish(out, q.dtype)
