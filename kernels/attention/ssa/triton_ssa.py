"""Fused SSA forward in Triton: ``O = q @ (k^T @ v) * scale`` for one (t, b, h) per program.

Each program owns one [N, d] head slice. Pass 1 walks the N tokens in blocks of BLOCK_N and
accumulates the d x d matrix KV = K^T V in registers (fp32 accumulation of exact integer
products). Pass 2 walks the tokens again and writes O = (Q_blk KV) * scale. The N x N score
matrix is never formed: cost O(N d^2) per head, as the official ``k^T @ v`` first order.

Layout: q, k, v and O are addressed through their (t, b, h, n) element strides (channel
stride 1), so the token layout [T, B, N, H * d] is read and written in place (no head
split/merge copies); O has q's layout and dtype. Offsets are int64.

Exactness (_launch.py): operands are q, k, v in their own half precision (or fp16 for fp32
inputs declared integers <= 2048, e.g. spikes), on tensor cores; KV enters the second dot
as one fp16/bf16 operand when N * max|k| * max|v| is within the exact limit, split into
hi * base + lo when below its square, and through an IEEE fp32 dot beyond (or when the bound
is unknown). So the result equals ``reference.ssa_reference`` bit for bit for integer inputs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..._backend import triton_interpreted
from ..._tuning import Tuned
from .._exact import dot, dot_acc_rhs, to_operand
from .._launch import (
    OP_FP16,
    OP_IEEE,
    accumulator_mode,
    as_heads,
    block_dim,
    empty_out,
    finish,
    head_strides,
    operand_kind,
)

# GPU autotune configs (kernels/_tuning.py), keyed on (N, B, H); a [BLOCK_D, BLOCK_D] fp32
# accumulator lives in registers. Tensor-core plans up to d = 64: 4-8 warps, 32-64 tokens per
# step. IEEE fp32 dots (FMA, no tensor cores) or d > 64: 8 warps and smaller token blocks.
# Every config is compiled by benchmarks/aot/compile_all.py (no spill).
TC_CONFIGS = [
    {"BLOCK_N": 64, "num_warps": 4, "num_stages": 2},
    {"BLOCK_N": 32, "num_warps": 4, "num_stages": 2},
    {"BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    {"BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
]
WIDE_CONFIGS = [
    {"BLOCK_N": 32, "num_warps": 8, "num_stages": 2},
    {"BLOCK_N": 16, "num_warps": 8, "num_stages": 2},
]
INTERP_CONFIG = {"BLOCK_N": 128, "num_warps": 4, "num_stages": 1}


def ssa_configs(d: int, op: int = OP_FP16) -> list[dict]:
    """The GPU autotune configs for head dim d and operand kind op (first = default)."""
    return WIDE_CONFIGS if block_dim(d) > 64 or op == OP_IEEE else TC_CONFIGS


def ssa_config(d: int, op: int = OP_FP16, interpreted: bool | None = None) -> dict:
    """Default launch config (BLOCK_N, BLOCK_D, num_warps, num_stages): the interpreter's, or
    the first GPU autotune config for (d, op)."""
    interpreted = triton_interpreted() if interpreted is None else interpreted
    cfg = INTERP_CONFIG if interpreted else ssa_configs(d, op)[0]
    return {**cfg, "BLOCK_D": block_dim(d)}


@triton.jit
def _ssa_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr,
                    q_stride_t, q_stride_b, q_stride_h, q_stride_n,
                    k_stride_t, k_stride_b, k_stride_h, k_stride_n,
                    v_stride_t, v_stride_b, v_stride_h, v_stride_n,
                    o_stride_t, o_stride_b, o_stride_h, o_stride_n,
                    B, H, N, scale,
                    D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                    OP: tl.constexpr, ACC: tl.constexpr):
    pid = tl.program_id(0)
    h = (pid % H).to(tl.int64)
    tb = pid // H
    b = (tb % B).to(tl.int64)
    t = (tb // B).to(tl.int64)
    qb = t * q_stride_t + b * q_stride_b + h * q_stride_h
    kb = t * k_stride_t + b * k_stride_b + h * k_stride_h
    vb = t * v_stride_t + b * v_stride_b + h * v_stride_h
    ob = t * o_stride_t + b * o_stride_b + h * o_stride_h
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    kv = tl.zeros((BLOCK_D, BLOCK_D), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        rows = offs_n.to(tl.int64)[:, None]
        mask = (offs_n < N)[:, None] & mask_d[None, :]
        k = tl.load(k_ptr + kb + rows * k_stride_n + offs_d[None, :], mask=mask, other=0.0)
        v = tl.load(v_ptr + vb + rows * v_stride_n + offs_d[None, :], mask=mask, other=0.0)
        kv += dot(tl.trans(to_operand(k, OP)), to_operand(v, OP), OP)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        rows = offs_n.to(tl.int64)[:, None]
        mask = (offs_n < N)[:, None] & mask_d[None, :]
        q = tl.load(q_ptr + qb + rows * q_stride_n + offs_d[None, :], mask=mask, other=0.0)
        o = dot_acc_rhs(to_operand(q, OP), kv, OP, ACC) * scale
        tl.store(o_ptr + ob + rows * o_stride_n + offs_d[None, :],
                 o.to(o_ptr.dtype.element_ty), mask=mask)


_SSA_TC = Tuned(_ssa_fwd_kernel, TC_CONFIGS, key=["N", "B", "H"], interp=INTERP_CONFIG)
_SSA_WIDE = Tuned(_ssa_fwd_kernel, WIDE_CONFIGS, key=["N", "B", "H"], interp=INTERP_CONFIG)


def ssa_plan(dtype: torch.dtype, N: int, max_value: float | None) -> tuple[int, int]:
    """(OP, ACC) constexprs for inputs of ``dtype`` bounded by ``max_value`` (None:
    unknown): KV = K^T V is bounded by N * max_value**2."""
    op = operand_kind(dtype, max_value)
    bound = None if max_value is None else N * max_value * max_value
    return op, accumulator_mode(op, bound)


def ssa_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
               max_value: float | None = None) -> torch.Tensor:
    """Launch the fused SSA forward on ``[T, B, H, N, d]`` tensors (any strides with channel
    stride 1); returns O in q's dtype and memory layout. ``max_value``: bound on |q|, |k|,
    |v| (None: unknown; picks the exact dot plan, reads nothing)."""
    q, k, v = as_heads(q), as_heads(k), as_heads(v)
    T, B, H, N, d = q.shape
    out = empty_out(q)
    op, acc = ssa_plan(q.dtype, N, max_value)
    tuned = _SSA_WIDE if ssa_configs(d, op) is WIDE_CONFIGS else _SSA_TC
    tuned[lambda meta: (T * B * H,)](
        q, k, v, out, *head_strides(q), *head_strides(k), *head_strides(v),
        *head_strides(out), B, H, N, float(scale), D=d, BLOCK_D=block_dim(d), OP=op, ACC=acc)
    return finish(out, q.dtype)
