"""Fused DSFormer attention forward in Triton: per-row top-k threshold, then S_sparse V.

Grid: (B * H * num_windows, cdiv(window_size * N, BLOCK_M)). A program owns BLOCK_M query
tokens of one (b, h, window); window tokens are (t, n) pairs in t-major order, addressed
straight through the (t, b, h, n) element strides of q, k, v and O (channel stride 1), so the
token layout [T, B, N, H * d] is used in place (no copy); O has q's layout and dtype. Keys
are streamed in blocks of BLOCK_N; the full (wN x wN) score matrix is never stored: at most
a [BLOCK_M, BLOCK_N] score tile.

Pass 1 (threshold): theta[m] = the k-th largest score of row m, found from exact integer
scores S = Q K^T in [0, S_max], S_max = d * max(q) * max(k):
  - histogram (S_max + 1 <= MAX_BINS, always so for binary spikes with d < 256): a per-row
    count of each score value, NBINS = next power of two >= S_max + 1 bins, filled in one
    sweep over the keys; count(S >= b) is a suffix sum (total - cumsum + hist) and theta is
    the largest b with count(S >= b) >= k.
  - bisection (larger S_max, graded spikes with big d or max_level): the documented
    alternative to a huge histogram. Integer bisection on theta in [0, S_max + 1) with one
    counting sweep over the keys per step, ceil(log2(S_max + 1)) sweeps; same theta.
  Pass 1 is skipped when every key is kept (k = L).
Pass 2: acc += where(S >= theta, S, 0) @ V over key blocks; O = acc * scale.

Exactness: q, k must be non-negative integers (checked on CPU tensors or with validate=True;
never read on a GPU's hot path); scores and the accumulator are integers below 2**24 in fp32.
Scores come from exact half-precision tensor-core dots (_launch.py); the kept scores enter the
S V dot as one fp16/bf16 operand when S_max = d * max_value**2 is within the exact limit,
split hi/lo below its square, and through an IEEE fp32 dot beyond. S_max follows from the
declared max_value (binary spikes: 1); unknown (None on a GPU) means the bisection over the
whole exact range [0, 2**24). Ties at theta are kept, so the result equals
``reference.dsformer_reference`` bit for bit.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..._backend import triton_interpreted
from .._exact import dot, dot_acc_lhs, to_operand
from .._launch import (
    ACC_IEEE,
    ACC_SINGLE,
    MAX_EXACT_SUM,
    accumulator_mode,
    as_heads,
    block_dim,
    empty_out,
    finish,
    head_strides,
    operand_kind,
)
from .reference import topk_count

MAX_BINS = 256


def dsformer_config(d: int, nbins: int, acc: int = ACC_SINGLE,
                    interpreted: bool | None = None) -> dict:
    """Launch config: BLOCK_M, BLOCK_N, BLOCK_D, num_warps, num_stages.

    The histogram tile is [BLOCK_M, BLOCK_N, NBINS] int32 values: GPU blocks shrink as NBINS
    grows so the tile stays in registers; an IEEE fp32 S V dot (FMA) gets 8 warps (no spill
    in the AOT check)."""
    interpreted = triton_interpreted() if interpreted is None else interpreted
    bd = block_dim(d)
    if interpreted:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 4, "num_stages": 1}
    if nbins > 64 or acc == ACC_IEEE:
        return {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_D": bd, "num_warps": 8, "num_stages": 1}
    return {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_D": bd, "num_warps": 4, "num_stages": 2}


@triton.jit
def _rows(offs, t0, N, stride_t, stride_n):
    """int64 element offsets of window tokens ``offs`` (t-major (t, n) pairs from step t0)."""
    tt = (t0 + offs // N).to(tl.int64)
    nn = (offs % N).to(tl.int64)
    return tt * stride_t + nn * stride_n


@triton.jit
def _scores(q, k_ptr, rows_k, mask_k, offs_d, mask_d, OP: tl.constexpr):
    """Score tile S = Q_blk K_blk^T [BLOCK_M, BLOCK_N] (fp32, exact) for one block of keys."""
    kmask = mask_k[:, None] & mask_d[None, :]
    k = tl.load(k_ptr + rows_k[:, None] + offs_d[None, :], mask=kmask, other=0.0)
    return dot(q, tl.trans(to_operand(k, OP)), OP)


@triton.jit
def _dsformer_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr,
                         q_stride_t, q_stride_b, q_stride_h, q_stride_n,
                         k_stride_t, k_stride_b, k_stride_h, k_stride_n,
                         v_stride_t, v_stride_b, v_stride_h, v_stride_n,
                         o_stride_t, o_stride_b, o_stride_h, o_stride_n,
                         T, B, H, N, WIN, NWIN, K_FULL, K_LAST, scale, S_MAX,
                         D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         BLOCK_D: tl.constexpr, MODE: tl.constexpr, NBINS: tl.constexpr,
                         NITER: tl.constexpr, OP: tl.constexpr, ACC: tl.constexpr):
    # MODE: 0 dense (keep all keys), 1 histogram threshold, 2 bisection threshold.
    pid0 = tl.program_id(0)
    bh = pid0 % (B * H)
    w = pid0 // (B * H)
    h = (bh % H).to(tl.int64)
    b = (bh // H).to(tl.int64)
    t0 = w * WIN
    L = tl.minimum(WIN, T - t0) * N
    k_keep = tl.where(w == NWIN - 1, K_LAST, K_FULL)
    # int64 addressing throughout (heads of one (b, h) through their strides)
    qh = q_ptr + (b * q_stride_b + h * q_stride_h)
    kh = k_ptr + (b * k_stride_b + h * k_stride_h)
    vh = v_ptr + (b * v_stride_b + h * v_stride_h)
    oh = o_ptr + (b * o_stride_b + h * o_stride_h)

    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < L
    qmask = mask_m[:, None] & mask_d[None, :]
    q = tl.load(qh + _rows(offs_m, t0, N, q_stride_t, q_stride_n)[:, None] + offs_d[None, :],
                mask=qmask, other=0.0)
    q = to_operand(q, OP)

    theta = tl.zeros((BLOCK_M,), dtype=tl.float32)
    if MODE == 1:
        bins = tl.arange(0, NBINS)
        hist = tl.zeros((BLOCK_M, NBINS), dtype=tl.int32)
        for j0 in range(0, L, BLOCK_N):
            offs_j = j0 + tl.arange(0, BLOCK_N)
            mask_j = offs_j < L
            rows_j = _rows(offs_j, t0, N, k_stride_t, k_stride_n)
            s = _scores(q, kh, rows_j, mask_j, offs_d, mask_d, OP)
            s = tl.where(mask_j[None, :], s, -1.0).to(tl.int32)
            hit = (s[:, :, None] == bins[None, None, :]).to(tl.int32)
            hist += tl.sum(hit, axis=1)
        count_ge = tl.sum(hist, axis=1)[:, None] - tl.cumsum(hist, axis=1) + hist
        theta = (tl.sum((count_ge >= k_keep).to(tl.int32), axis=1) - 1).to(tl.float32)
    elif MODE == 2:
        lo = tl.zeros((BLOCK_M,), dtype=tl.int32)
        hi = tl.zeros((BLOCK_M,), dtype=tl.int32) + S_MAX + 1
        for _ in range(NITER):
            mid = (lo + hi) // 2
            midf = mid.to(tl.float32)
            cnt = tl.zeros((BLOCK_M,), dtype=tl.int32)
            for j0 in range(0, L, BLOCK_N):
                offs_j = j0 + tl.arange(0, BLOCK_N)
                mask_j = offs_j < L
                rows_j = _rows(offs_j, t0, N, k_stride_t, k_stride_n)
                s = _scores(q, kh, rows_j, mask_j, offs_d, mask_d, OP)
                ge = mask_j[None, :] & (s >= midf[:, None])
                cnt += tl.sum(ge.to(tl.int32), axis=1)
            ok = cnt >= k_keep
            lo = tl.where(ok, mid, lo)
            hi = tl.where(ok, hi, mid)
        theta = lo.to(tl.float32)

    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for j0 in range(0, L, BLOCK_N):
        offs_j = j0 + tl.arange(0, BLOCK_N)
        mask_j = offs_j < L
        s = _scores(q, kh, _rows(offs_j, t0, N, k_stride_t, k_stride_n), mask_j, offs_d,
                    mask_d, OP)
        keep = mask_j[None, :] & (s >= theta[:, None])
        s = tl.where(keep, s, 0.0)
        vmask = mask_j[:, None] & mask_d[None, :]
        rows_v = _rows(offs_j, t0, N, v_stride_t, v_stride_n)
        v = tl.load(vh + rows_v[:, None] + offs_d[None, :], mask=vmask, other=0.0)
        acc += dot_acc_lhs(s, to_operand(v, OP), OP, ACC)
    rows_o = _rows(offs_m, t0, N, o_stride_t, o_stride_n)
    tl.store(oh + rows_o[:, None] + offs_d[None, :], (acc * scale).to(o_ptr.dtype.element_ty),
             mask=qmask)


def dsformer_plan(dtype: torch.dtype, d: int, max_value: float | None) -> tuple[int, int, int]:
    """(S_MAX, OP, ACC) for inputs of ``dtype`` with values in [0, max_value] (None:
    unknown, S_MAX = 2**24 - 1, the whole exact range)."""
    op = operand_kind(dtype, max_value)
    if max_value is None:
        s_max = MAX_EXACT_SUM - 1
    else:
        s_max = min(int(d * max_value * max_value), MAX_EXACT_SUM - 1)
    return s_max, op, accumulator_mode(op, None if max_value is None else s_max)


def dsformer_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_size: int,
                    sparse_ratio: float, scale: float,
                    max_value: float | None = None) -> torch.Tensor:
    """Launch the fused DSFormer forward on ``[T, B, H, N, d]`` (any strides with channel
    stride 1); returns O in q's dtype and memory layout.

    ``max_value``: bound on the (non-negative integer) values of q, k and v, already checked
    by the op when validated; it sizes the threshold search and the dot plan without reading
    the device.
    """
    q, k, v = as_heads(q), as_heads(k), as_heads(v)
    T, B, H, N, d = q.shape
    s_max, op, acc = dsformer_plan(q.dtype, d, max_value)
    nwin = math.ceil(T / window_size)
    last = (T - (nwin - 1) * window_size) * N
    k_full, k_last = topk_count(sparse_ratio, window_size * N), topk_count(sparse_ratio, last)
    if k_full >= window_size * N and k_last >= last:
        mode, nbins, niter = 0, 1, 1
    elif s_max + 1 <= MAX_BINS:
        mode, nbins, niter = 1, triton.next_power_of_2(s_max + 1), 1
    else:
        mode, nbins, niter = 2, 1, max(1, math.ceil(math.log2(s_max + 1)))
    cfg = dsformer_config(d, nbins, acc)
    out = empty_out(q)
    grid = (B * H * nwin, triton.cdiv(min(window_size, T) * N, cfg["BLOCK_M"]))
    _dsformer_fwd_kernel[grid](
        q, k, v, out, *head_strides(q), *head_strides(k), *head_strides(v), *head_strides(out),
        T, B, H, N, window_size, nwin, k_full, k_last, float(scale), s_max,
        D=d, MODE=mode, NBINS=nbins, NITER=niter, OP=op, ACC=acc, **cfg)
    return finish(out, q.dtype)
