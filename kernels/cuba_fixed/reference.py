"""Pure-PyTorch fixed-point CUBA-LIF: Lava's bit-accurate Loihi model, step by step.

The spec is what Lava computes: ``lava.proc.lif.models.AbstractPyLifModelFixed.subthr_dynamics``
and ``PyLifModelBitAcc`` (lava-nc 0.10, tag "fixed_pt"), not a summary of it. Per timestep t,
with a[t] the integer synaptic input (already aggregated, W s) and M = 2**23:

    current  : d_u  = trunc((u * (4096 - (du + 1))) / 4096)   # sign(p) * (|p| >> 12), int64 p
               d_u  = d_u + (a[t] << 6)                         # MSB alignment of the input
               u    = d_u - 2M  if d_u > M       else d_u       # 24-bit wrap, Lava's order
               u    = d_u + 2M  if u <= -M       else u
    voltage  : d_v  = trunc((v * (4096 - dv)) / 4096)
               v    = clip(d_v + u + bias, -(M - 1), M - 1)     # 24-bit saturation
               bias = bias_mant << bias_exp (bias_exp >= 0) | bias_mant >> -bias_exp (floor)
    spike    : s    = v > (vth_mant << 6)                       # strictly greater
    reset    : v    = 0 where s

``du`` carries Lava's ``ds_offset = 1`` (effective current decay (du + 1) / 4096) and ``dv``
its ``dm_offset = 0`` (effective voltage decay dv / 4096). The Triton kernel
(``triton_cuba.py``) performs the same integer operations in the same order.
"""

from __future__ import annotations

import torch

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6
VTH_SHIFT = 6
MAX_UV = 1 << 23


def effective_bias(bias_mant: torch.Tensor, bias_exp: int) -> torch.Tensor:
    """bias_mant scaled by 2**bias_exp as Lava does (arithmetic right shift for bias_exp < 0).

    Shapes: bias_mant any shape, int32 or int64; returns int64 of the same shape.
    Source: lava AbstractPyLifModelFixed.scale_bias.
    """
    b = bias_mant.to(torch.int64)
    return b << bias_exp if bias_exp >= 0 else b >> (-bias_exp)


def _decay(x: torch.Tensor, factor: int) -> torch.Tensor:
    """trunc(x * factor / 4096) on int64: sign(p) * (|p| >> 12), Lava's rounding toward 0."""
    p = x * factor
    return torch.sign(p) * (p.abs() >> DECAY_SHIFT)


def cuba_fixed_reference(
    a: torch.Tensor,
    du: int,
    dv: int,
    vth_mant: int,
    bias_mant: torch.Tensor | int = 0,
    bias_exp: int = 0,
    u_init: torch.Tensor | None = None,
    v_init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed-point CUBA-LIF over a [T, ...] (int32); returns (spikes uint8, u_last, v_last).

    spikes have a's shape; u_last and v_last are int32 of shape a.shape[1:]. Arguments are
    validated by ``stc.kernels.cuba_fixed.cuba_lif_fixed``; this function trusts them.
    """
    shape = a.shape[1:]
    u = torch.zeros(shape, dtype=torch.int64, device=a.device) if u_init is None \
        else u_init.to(torch.int64).expand(shape).clone()
    v = torch.zeros(shape, dtype=torch.int64, device=a.device) if v_init is None \
        else v_init.to(torch.int64).expand(shape).clone()
    if not isinstance(bias_mant, torch.Tensor):
        bias_mant = torch.tensor(int(bias_mant), dtype=torch.int64, device=a.device)
    bias = effective_bias(bias_mant, bias_exp).expand(shape)
    fu = DECAY_UNITY - (du + 1)
    fv = DECAY_UNITY - dv
    vth = vth_mant << VTH_SHIFT
    spikes = torch.empty(a.shape, dtype=torch.uint8, device=a.device)
    for t in range(a.shape[0]):
        d_u = _decay(u, fu) + (a[t].to(torch.int64) << ACT_SHIFT)
        w = torch.where(d_u > MAX_UV, d_u - 2 * MAX_UV, d_u)
        u = torch.where(w <= -MAX_UV, d_u + 2 * MAX_UV, w)
        v = torch.clamp(_decay(v, fv) + u + bias, -(MAX_UV - 1), MAX_UV - 1)
        s = v > vth
        v = torch.where(s, torch.zeros_like(v), v)
        spikes[t] = s.to(torch.uint8)
    return spikes, u.to(torch.int32), v.to(torch.int32)
