"""Fused SSA forward in Triton: ``O = q @ (k^T @ v) * scale`` for one (t, b, h) per program.

Each program owns one [N, d] head slice. Pass 1 walks the N tokens in blocks of BLOCK_N and
accumulates the d x d matrix KV = K^T V in registers (fp32; integer counts, exact below 2**24).
Pass 2 walks the tokens again and writes O = (Q_blk KV) * scale. The N x N score matrix is
never formed: cost O(N d^2) per head, as the official ``k^T @ v`` first order.

Exactness: spikes and small integers are exact operands of tl.dot; KV <= N * max_k * max_v.
The launcher uses tf32 only when every operand bound is <= 2048 and IEEE fp32 otherwise (and
always under the interpreter), so the result equals ``reference.ssa_reference`` bit for bit
for integer inputs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._launch import block_dim, dot_precision

BLOCK_N = 16


@triton.jit
def _ssa_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, N, D, scale,
                    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    pid = tl.program_id(0)
    base = pid.to(tl.int64) * N * D
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    kv = tl.zeros((BLOCK_D, BLOCK_D), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = (offs_n < N)[:, None] & mask_d[None, :]
        ptrs = base + offs_n[:, None] * D + offs_d[None, :]
        k = tl.load(k_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
        v = tl.load(v_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
        kv += tl.dot(tl.trans(k), v, input_precision=PREC)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask = (offs_n < N)[:, None] & mask_d[None, :]
        ptrs = base + offs_n[:, None] * D + offs_d[None, :]
        q = tl.load(q_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
        o = tl.dot(q, kv, input_precision=PREC) * scale
        tl.store(o_ptr + ptrs, o, mask=mask)


def ssa_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Launch the fused SSA forward on ``[T, B, H, N, d]`` tensors; returns q.dtype output."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    T, B, H, N, d = q.shape
    out = torch.empty(q.shape, device=q.device, dtype=torch.float32)
    kmax, vmax = float(k.abs().max()), float(v.abs().max())
    prec = dot_precision(float(q.abs().max()), kmax, vmax, N * kmax * vmax)
    _ssa_fwd_kernel[(T * B * H,)](q, k, v, out, N, d, float(scale),
                                  BLOCK_N=BLOCK_N, BLOCK_D=block_dim(d), PREC=prec)
    return out.to(q.dtype)
