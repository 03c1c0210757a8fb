"""Spike attention ops on per-head spikes ``[T, B, H, N, d]`` (stc.kernels.attention).

- ``ssa``: Spikformer SSA, ``q @ (k^T @ v) * scale`` (pre-LIF).
- ``sdsa``: Spike-driven Transformer SDSA, ``q * LIF_{v_th}(sum_N(k * v))``.
- ``dsformer``: stc's windowed top-k sparse spike attention (pre-LIF).

Each op folder holds ``reference.py`` (pure PyTorch, the official code's operation order),
``triton_*.py`` (fused forward kernel) and ``op.py`` (autograd + ``backend`` dispatch).
"""

from .dsformer import dsformer, dsformer_reference
from .sdsa import sdsa, sdsa_reference
from .ssa import ssa, ssa_reference

__all__ = ["ssa", "sdsa", "dsformer", "ssa_reference", "sdsa_reference", "dsformer_reference"]
