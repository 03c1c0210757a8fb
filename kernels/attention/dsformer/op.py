"""Public DSFormer attention op: validation, then the fused Triton forward or the reference."""

from __future__ import annotations

import torch

from ..._backend import resolve_backend
from .._checks import check_number, check_qkv, check_sparse_ratio, check_window_size
from .._launch import check_max_value, value_bound
from .._recompute import recompute_qkv_grads
from .reference import dsformer_reference


class DSFormerFunction(torch.autograd.Function):
    """Triton forward; backward by recomputation: autograd through ``dsformer_reference``.

    The keep-mask (scores >= the row's k-th largest) is treated as a constant: gradients flow
    through the kept scores S = Q K^T (to q and k) and through V.
    """

    @staticmethod
    def forward(ctx, q, k, v, window_size, sparse_ratio, scale, max_value):
        from .triton_dsformer import dsformer_triton

        ctx.save_for_backward(q, k, v)
        ctx.args = (window_size, sparse_ratio, scale)
        return dsformer_triton(q, k, v, window_size, sparse_ratio, scale, max_value)

    @staticmethod
    def backward(ctx, grad_out):
        grads = recompute_qkv_grads(dsformer_reference, ctx.saved_tensors, grad_out, *ctx.args)
        return (*grads, None, None, None, None)


def dsformer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window_size: int = 1,
             sparse_ratio: float = 1.0, scale: float = 0.125,
             backend: str = "auto", max_value: float | None = None,
             validate: bool | None = None) -> torch.Tensor:
    """DSFormer attention before its LIF: windowed top-k sparse ``S_sparse V * scale``.

    Timesteps are grouped into windows of ``window_size`` (last one shorter when T is not a
    multiple); inside a window all w*N (t, n) tokens attend to each other with integer scores
    S = Q K^T; each query row keeps the keys scoring >= its k-th largest score,
    k = max(1, ceil(sparse_ratio * w * N)), ties kept.

    Args:
        q, k, v: per-head spikes ``[T, B, H, N, d]``: 0/1 ("binary") or small non-negative
            integers ("graded"), in fp32/fp16/bf16; any strides (a token tensor
            [T, B, N, H * d] viewed per head is used without a copy).
        window_size: timesteps per window (>= 1).
        sparse_ratio: fraction of keys kept per query row, in (0, 1].
        scale: dimensionless output scale (0.125 as in SSA).
        backend: "auto" | "triton" | "torch". The Triton kernel needs non-negative integer
            q and k (it finds each row's threshold with an integer score histogram).
        max_value: declared bound on the values (binary: 1; graded: max_level). It sizes the
            Triton kernel's threshold search (histogram of d * max_value**2 + 1 bins, or a
            bisection) and its exact dot plan without reading the device; None = unknown
            (CPU tensors: read from the data; GPU: bisection over [0, 2**24), IEEE S V dot).
        validate: check that q, k, v are non-negative integers within max_value (reads the
            data): None = CPU tensors only, True = always, False = never.

    Returns:
        ``[T, B, H, N, d]`` in q's dtype (pre-LIF; the module applies SN(v_th = 0.5)); on the
        Triton path in q's memory layout.

    Backward: Triton path recomputes through the reference; the sparsity mask is constant.

    Raises:
        TypeError: non-tensor inputs, bad dtypes, non-int window_size, non-numeric ratio/scale.
        ValueError: rank != 5, mismatched shapes/devices, NaN/inf, window_size < 1,
            sparse_ratio outside (0, 1], bad max_value; when validated on the Triton path,
            non-integer or negative values or values above max_value.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: stc's definition, shared/reference/attention.md ("DSFormer attention"); reduces
    to Spikformer SSA (Zhou et al., ICLR 2023) for window_size = 1, sparse_ratio = 1.
    """
    check_qkv(q, k, v)
    window_size = check_window_size(window_size)
    sparse_ratio = check_sparse_ratio(sparse_ratio)
    scale = check_number("scale", scale)
    max_value = check_max_value(max_value)
    if resolve_backend(backend, q.device) == "triton":
        bound = value_bound(max_value, validate, True, q=q, k=k, v=v)
        return DSFormerFunction.apply(q, k, v, window_size, sparse_ratio, scale, bound)
    return dsformer_reference(q, k, v, window_size, sparse_ratio, scale)
