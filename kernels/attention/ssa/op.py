"""Public SSA op: validation, then the fused Triton forward or the PyTorch reference."""

from __future__ import annotations

import torch

from ..._backend import resolve_backend
from .._checks import check_number, check_qkv
from .._launch import check_max_value, value_bound
from .._recompute import recompute_qkv_grads
from .reference import ssa_reference


class SSAFunction(torch.autograd.Function):
    """Triton forward; backward by recomputation: autograd through ``ssa_reference``.

    The recomputed backward is the plain matmul gradient of O = Q (K^T V) s:
    dQ = s dO (K^T V)^T, dK = V (s Q^T dO)^T, dV = K (s Q^T dO).
    """

    @staticmethod
    def forward(ctx, q, k, v, scale, max_value):
        from .triton_ssa import ssa_triton

        ctx.save_for_backward(q, k, v)
        ctx.scale = scale
        return ssa_triton(q, k, v, scale, max_value)

    @staticmethod
    def backward(ctx, grad_out):
        grads = recompute_qkv_grads(ssa_reference, ctx.saved_tensors, grad_out, ctx.scale)
        return (*grads, None, None)


def ssa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float = 0.125,
        backend: str = "auto", max_value: float | None = None,
        validate: bool | None = None) -> torch.Tensor:
    """Spiking self-attention before its LIF: ``q @ (k^T @ v) * scale``.

    Args:
        q, k, v: per-head spikes ``[T, B, H, N, d]`` (fp32/fp16/bf16 holding 0/1 spikes or small
            integers), any strides: the view ``x.view(T, B, N, H, d).permute(0, 1, 3, 2, 4)``
            of a token tensor [T, B, N, H * d] is used without a copy. The product is exact
            for integer inputs (sums below 2**24).
        scale: s, dimensionless (Spikformer: 0.125).
        backend: "auto" | "triton" | "torch".
        max_value: declared bound on |q|, |k|, |v| (binary spikes: 1). It picks the Triton
            kernel's exact tensor-core plan without reading the device; None = unknown
            (CPU tensors: read from the data; GPU: the IEEE fp32 plan where the bound matters).
        validate: check that the inputs are integers within max_value (reads the data):
            None = CPU tensors only, True = always, False = never (stc.kernels._validate).

    Returns:
        ``[T, B, H, N, d]`` in q's dtype (Triton path: in q's memory layout, so a token-layout
        view stays one): pre-LIF attention output (the module applies SN(v_th = 0.5)).

    Backward: Triton path recomputes through the reference (autograd of plain matmuls);
    gradients reach q, k and v.

    Raises:
        TypeError: non-tensor inputs, unsupported or mismatched dtypes, non-numeric scale.
        ValueError: rank != 5, mismatched shapes/devices, NaN/inf, non-finite scale, bad backend,
            bad max_value; when validated on the Triton path, non-integers or values above
            max_value.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: Zhou et al., "Spikformer", ICLR 2023, eq. 5-6; ZK-Zhou/spikformer imagenet/model.py.
    """
    check_qkv(q, k, v)
    scale = check_number("scale", scale)
    max_value = check_max_value(max_value)
    if resolve_backend(backend, q.device) == "triton":
        bound = value_bound(max_value, validate, False, q=q, k=k, v=v)
        return SSAFunction.apply(q, k, v, scale, bound)
    return ssa_reference(q, k, v, scale)
