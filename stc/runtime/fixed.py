"""Loihi 2 fixed-point CUBA-LIF dynamics in integer torch arithmetic (Lava's fixed_pt model).

The runtime itself runs neurons through stc.kernels.cuba_fixed; ``loihi_cuba_lif`` is a small,
independent loop kept as a cross-check for other parts (stc.lava's tests use it).

Per step t, with the synaptic input a[t]:
    u = sign(u * (4096 - i_decay)) * (|u * (4096 - i_decay)| >> 12) + (a << 6), wrapped to
        24-bit two's complement
    v = sign(v * (4096 - v_decay)) * (|v * (4096 - v_decay)| >> 12) + u + (bias << 6),
        clipped to [-(2^23 - 1), 2^23 - 1]
    s = v > (v_th_mant << 6);  v = 0 where s
Source: lava-nc 0.10 lava/proc/lif/models.py (AbstractPyLifModelFixed.subthr_dynamics, with
ds_offset 1 folded into i_decay) and shared/reference/lava.md.
"""

from __future__ import annotations

import torch

MAX_UV = 2 ** 23


def _decay(x: torch.Tensor, decay: int) -> torch.Tensor:
    y = x * (4096 - decay)
    return torch.sign(y) * (y.abs() >> 12)


def loihi_cuba_lif(a: torch.Tensor, i_decay: int, v_decay: int, v_th_mant: int,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """Run integer CUBA-LIF over a [T, ...] (int64 synaptic input per step) -> spikes [T, ...]
    (int64 in {0, 1}). Starts from u = v = 0.

    Raises:
        ValueError: a is not an integer tensor, or decays outside 0..4096.
    """
    if a.is_floating_point():
        raise ValueError("a must be an integer tensor of synaptic inputs")
    for nm, d in (("i_decay", i_decay), ("v_decay", v_decay)):
        if not 0 <= int(d) <= 4096:
            raise ValueError(f"{nm} must be in 0..4096, got {d}")
    a = a.to(torch.int64)
    u = torch.zeros_like(a[0])
    v = torch.zeros_like(a[0])
    b = 0 if bias is None else (bias.to(torch.int64) << 6)
    th = int(v_th_mant) << 6
    out = []
    for t in range(a.shape[0]):
        u = _decay(u, int(i_decay)) + (a[t] << 6)
        u = torch.where(u > MAX_UV, u - 2 * MAX_UV, u)
        u = torch.where(u <= -MAX_UV, u + 2 * MAX_UV, u)
        v = (_decay(v, int(v_decay)) + u + b).clamp(-MAX_UV + 1, MAX_UV - 1)
        s = v > th
        v = torch.where(s, torch.zeros_like(v), v)
        out.append(s.to(torch.int64))
    return torch.stack(out)
