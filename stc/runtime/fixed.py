"""Fixed-point helpers: Lava's one step of synaptic delay per layer.

In Lava, a Dense/Conv process delivers W s[t-1] to its neurons at step t; the integer CUBA-LIF
dynamics themselves run in stc.kernels.cuba_fixed (bit-exact with Lava's fixed_pt LIF).
Source: shared/reference/lava.md ("Each synapse layer adds one step of delay").
"""

from __future__ import annotations

import torch


def delay_one_step(a: torch.Tensor) -> torch.Tensor:
    """Shift [T, ...] by one step along T (a'[0] = 0, a'[t] = a[t-1]): Lava's synaptic delay."""
    return torch.cat([torch.zeros_like(a[:1]), a[:-1]], dim=0)
