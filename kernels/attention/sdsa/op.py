"""Public SDSA op: validation, then the fused Triton forward or the PyTorch reference."""

from __future__ import annotations

import torch

from ..._backend import resolve_backend
from .._checks import check_number, check_qkv
from .._recompute import recompute_qkv_grads
from .reference import sdsa_reference


class SDSAFunction(torch.autograd.Function):
    """Triton forward; backward by recomputation: autograd through ``sdsa_reference``.

    The recomputed backward differentiates the LIF with its sigmoid surrogate (alpha 4) and
    detach_reset=True, as SpikingJelly's MultiStepLIFNode does in the official code.
    """

    @staticmethod
    def forward(ctx, q, k, v, v_th):
        from .triton_sdsa import sdsa_triton

        ctx.save_for_backward(q, k, v)
        ctx.v_th = v_th
        return sdsa_triton(q, k, v, v_th)

    @staticmethod
    def backward(ctx, grad_out):
        return (*recompute_qkv_grads(sdsa_reference, ctx.saved_tensors, grad_out, ctx.v_th), None)


def sdsa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, v_th: float = 0.5,
         backend: str = "auto") -> torch.Tensor:
    """Spike-driven self-attention: ``q * LIF_{v_th}(sum_N(k * v))``.

    Args:
        q, k, v: per-head spikes ``[T, B, H, N, d]`` (fp32/fp16/bf16 holding 0/1 spikes or small
            integers).
        v_th: threshold of the talking-heads LIF (official: 0.5); tau = 2, hard reset to 0,
            detach_reset, sigmoid surrogate, run over T.
        backend: "auto" | "triton" | "torch".

    Returns:
        ``[T, B, H, N, d]`` in q's dtype (binary for binary q).

    Backward: Triton path recomputes through the reference (autograd with the LIF surrogate);
    gradients reach q, k and v.

    Raises:
        TypeError: non-tensor inputs, unsupported or mismatched dtypes, non-numeric v_th.
        ValueError: rank != 5, mismatched shapes/devices, NaN/inf, bad backend.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: Yao et al., "Spike-driven Transformer", NeurIPS 2023, eq. 8-9;
    BICLab/Spike-Driven-Transformer module/ms_conv.py.
    """
    check_qkv(q, k, v)
    v_th = check_number("v_th", v_th)
    if resolve_backend(backend, q.device) == "triton":
        return SDSAFunction.apply(q, k, v, v_th)
    return sdsa_reference(q, k, v, v_th)
