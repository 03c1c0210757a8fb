"""Spike-driven self-attention (SDSA, Spike-driven Transformer v1) in pure PyTorch.

Operation order follows the official code (BICLab/Spike-Driven-Transformer, module/ms_conv.py,
``MS_SSA_Conv.forward``):

    kv = k * v                               # [T, B, H, N, d]  AND of two spike maps
    kv = kv.sum(dim=-2, keepdim=True)        # [T, B, H, 1, d]  column sum over tokens
    kv = talking_heads_lif(kv)               # multi-step LIF over T: tau 2, v_th 0.5,
                                             # hard reset to 0, detach_reset, sigmoid surrogate
    x = q * kv                               # [T, B, H, N, d]

Math: SDSA(Q, K, V) = Q (.) SN(SUM_N(K (.) V)), Yao et al., "Spike-driven Transformer",
NeurIPS 2023, eq. 8-9. The LIF is stc.kernels.lif's pure-PyTorch reference (same dynamics as
SpikingJelly's MultiStepLIFNode).
"""

from __future__ import annotations

import torch

from ...lif.reference import lif_reference

SDSA_TAU = 2.0
SDSA_V_RESET = 0.0


def sdsa_kv(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Token sum of ``k * v``: ``[T, B, H, N, d]`` x2 -> ``[T, B, H, 1, d]`` (LIF input)."""
    return (k * v).sum(dim=-2, keepdim=True)


def sdsa_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   v_th: float = 0.5) -> torch.Tensor:
    """``q * LIF_{v_th}(sum_N(k * v))`` on ``[T, B, H, N, d]`` tensors -> ``[T, B, H, N, d]``.

    The LIF runs over dim 0 (T) with tau = 2, hard reset to 0, detach_reset=True and the
    sigmoid surrogate (alpha 4) for gradients. No argument checks: see ``op.sdsa``.
    """
    kv = sdsa_kv(k, v)
    kv, _ = lif_reference(kv, tau=SDSA_TAU, v_th=v_th, v_reset=SDSA_V_RESET,
                          decay_input=True, detach_reset=True, surrogate="sigmoid")
    return q * kv
