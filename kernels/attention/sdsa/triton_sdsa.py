"""Fused SDSA forward in Triton: ``O = q * LIF_{v_th}(sum_N(k * v))`` without a kv tensor.

One program owns one (b, h) pair and a block of BLOCK_D channels and walks the T timesteps
with the talking-heads LIF membrane potential in registers. Per step: sum k * v over the N
tokens (blocks of BLOCK_N), update the LIF exactly as ``stc.kernels.lif.reference`` does
(H = V + (X - (V - 0)) / tau with tau = 2, S = (H - v_th >= 0), hard reset to 0), then write
q * S for every token. The [T, B, H, 1, d] kv tensor never reaches global memory.

Exactness: token sums of products of integers are exact in fp32, the division by tau uses
``tl.math.div_rn`` (IEEE) and the update order is the reference's, so spikes and outputs equal
``reference.sdsa_reference`` bit for bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .reference import SDSA_TAU, SDSA_V_RESET

BLOCK_N = 16
BLOCK_D = 32


@triton.jit
def _sdsa_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, T, BH, N, D, tau, v_th, v_reset,
                     BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    mem = tl.zeros((BLOCK_D,), dtype=tl.float32) + v_reset
    for t in range(0, T):
        base = (t * BH + bh).to(tl.int64) * N * D
        x = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            mask = (offs_n < N)[:, None] & mask_d[None, :]
            ptrs = base + offs_n[:, None] * D + offs_d[None, :]
            k = tl.load(k_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
            v = tl.load(v_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
            x += tl.sum(k * v, axis=0)
        h = mem + tl.math.div_rn(x - (mem - v_reset), tau)
        s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
        mem = h * (1.0 - s) + v_reset * s
        for n0 in range(0, N, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            mask = (offs_n < N)[:, None] & mask_d[None, :]
            ptrs = base + offs_n[:, None] * D + offs_d[None, :]
            q = tl.load(q_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
            tl.store(o_ptr + ptrs, q * s[None, :], mask=mask)


def sdsa_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, v_th: float) -> torch.Tensor:
    """Launch the fused SDSA forward on ``[T, B, H, N, d]`` tensors; returns q.dtype output."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    T, B, H, N, d = q.shape
    out = torch.empty(q.shape, device=q.device, dtype=torch.float32)
    block_d = min(BLOCK_D, max(16, triton.next_power_of_2(d)))
    grid = (B * H, triton.cdiv(d, block_d))
    _sdsa_fwd_kernel[grid](q, k, v, out, T, B * H, N, d, float(SDSA_TAU), float(v_th),
                           float(SDSA_V_RESET), BLOCK_N=BLOCK_N, BLOCK_D=block_d)
    return out.to(q.dtype)
