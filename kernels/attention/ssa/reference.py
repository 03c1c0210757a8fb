"""Spiking self-attention (SSA, Spikformer) in pure PyTorch: the reference for the kernel.

Operation order follows the official code (ZK-Zhou/spikformer, imagenet/model.py, ``SSA``):

    x = k.transpose(-2, -1) @ v      # [.., d, d]  integer coincidence counts
    x = (q @ x) * scale              # [.., N, d]  pre-LIF attention output

Math: SSA(Q, K, V) = Q K^T V * s (no softmax), Zhou et al., "Spikformer", ICLR 2023, eq. 5-6.
With spikes or small integers in Q, K, V every product and sum before the scale is an exact
integer in fp32 (below 2**24), so the kernel reproduces this bit for bit.
"""

from __future__ import annotations

import torch


def ssa_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  scale: float = 0.125) -> torch.Tensor:
    """``q @ (k^T @ v) * scale`` on per-head tensors ``[T, B, H, N, d]`` -> ``[T, B, H, N, d]``.

    Differentiable by autograd (plain matmul gradients). No argument checks: see ``op.ssa``.
    """
    x = k.transpose(-2, -1) @ v
    return (q @ x) * scale
