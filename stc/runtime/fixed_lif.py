"""A tight Loihi 2 fixed-point CUBA-LIF recurrence for the fixed runtime (CPU and CUDA).

Computes exactly what ``kernels/cuba_fixed/reference.py`` (Lava's ``fixed_pt`` LIF,
shared/reference/lava.md) computes, with far fewer tensor operations per step:

- the synaptic input of all T steps is known before the recurrence (delay-free timing,
  layer-major order), so ``a << 6``, the 24-bit wrap of u (when the current does not persist,
  i_decay = 4096: u = wrap(a << 6)) and the bias are applied to all steps at once, or once
  when the input is the same every step (a Repeat encoder: stride 0 along T);
- wrap and saturation are skipped where the load-time bound on |a| proves they cannot occur
  (|a << 6| < 2**23 for the wrap; (v_th << 6) + max|u + bias| and T max|u + bias| below
  2**23 - 1 for the saturation);
- the decays trunc(x * (4096 - d) / 4096) are one multiply by the exact constant
  (4096 - d) / 4096 = p / 2**k and one trunc on integer-valued floats: float32 when every
  intermediate (|x| p, sums before the clamp) is proven below 2**24, float64 below 2**53,
  else an int64 loop with a rounding-toward-zero shift (unbounded inputs);
- spikes are written in place into one [T, ...] buffer.
"""

from __future__ import annotations

import math

import torch

DECAY_SHIFT = 12
ACT_SHIFT = 6
MAX_UV = 1 << 23


def _fraction(keep: int) -> tuple[int, int]:
    """keep / 4096 as p / 2**k in lowest terms (keep in 0..4096)."""
    if keep == 0:
        return 0, 0
    k = DECAY_SHIFT
    while k and keep % 2 == 0:
        keep //= 2
        k -= 1
    return keep, k


def _trunc_shift_(x: torch.Tensor, k: int, bits: int) -> torch.Tensor:
    """In place: x = trunc(x / 2**k) (round toward zero) for integer x."""
    if k:
        x.add_((x >> (bits - 1)) & ((1 << k) - 1)).bitwise_right_shift_(k)
    return x


def _decay(x: torch.Tensor, pk: tuple[int, int], bits: int) -> torch.Tensor:
    """trunc(x * p / 2**k): Lava's sign(x f) (|x f| >> 12) with f / 4096 = p / 2**k."""
    p, k = pk
    if p == 0:
        return torch.zeros_like(x)
    if p == 1 and k == 0:
        return x
    y = x * p if p != 1 else x.clone()
    return _trunc_shift_(y, k, bits)


def _wrap(d: torch.Tensor) -> torch.Tensor:
    """Lava's 24-bit wrap of u: d - 2M where d > M, d + 2M where d <= -M (M = 2**23)."""
    return d - (d > MAX_UV).to(d.dtype) * (2 * MAX_UV) + (d <= -MAX_UV).to(d.dtype) * (
        2 * MAX_UV)


def cuba_lif_run(a: torch.Tensor, *, i_decay: int, v_decay: int, v_th_mant: int,
                 bias: torch.Tensor | None = None, bias_exp: int = 6,
                 a_bound: float = math.inf, bias_bound: float | None = None) -> torch.Tensor:
    """Run Loihi 2 fixed-point CUBA-LIF from rest over ``a`` [T, ...]; return spikes [T, ...]
    as float32 0/1.

    Args:
        a: synaptic input [T, ...], any dtype holding exact integers (float32/float64 from the
            runtime's float matmuls, or int); may have stride 0 along T (same every step).
        i_decay, v_decay: netx decays in 1/4096 units, i_decay in 1..4096 (Lava du + 1),
            v_decay in 0..4096.
        v_th_mant: threshold mantissa; a spike where v > v_th_mant << 6.
        bias: integer bias mantissa broadcastable to a.shape[1:], or None; v gets
            bias << bias_exp (>> -bias_exp, flooring, when negative) each step.
        a_bound: a proven bound on |a| (stc.runtime.fixed_plan); inf when unknown. Only
            decides which exact shortcuts apply; the result is the same for any true bound.
        bias_bound: max |bias << bias_exp| when known (the plan computes it at load time);
            None reads it from ``bias`` (a device read on CUDA).

    Returns:
        spikes [T, ...] float32 in {0, 1}, bit-identical to
        ``stc.kernels.cuba_fixed.cuba_fixed_reference(a, i_decay - 1, v_decay, v_th_mant,
        bias, bias_exp)`` for |a| < 2**24 (Lava's own range).

    Raises:
        ValueError: i_decay outside 1..4096 or v_decay outside 0..4096.
    """
    if not 1 <= i_decay <= 4096 or not 0 <= v_decay <= 4096:
        raise ValueError(f"i_decay must be in 1..4096 and v_decay in 0..4096, got {i_decay}, "
                         f"{v_decay}")
    T = a.shape[0]
    shape = a.shape[1:]
    static = T > 1 and a.stride(0) == 0
    b_max = 0.0
    b_eff = None
    if bias is not None:
        b64 = bias.to(torch.int64)
        b_eff = b64 << bias_exp if bias_exp >= 0 else b64 >> (-bias_exp)
        if bias_bound is not None:
            b_max = float(bias_bound)
        elif b_eff.numel():
            b_max = float(b_eff.abs().max())
    vth = int(v_th_mant) << ACT_SHIFT
    a6_max = a_bound * 64
    fu, fv = _fraction(4096 - i_decay), _fraction(4096 - v_decay)
    persistent = fu[0] != 0
    # |u| <= a6_max / (1 - (4096 - i_decay) / 4096): decays only shrink u, and Lava's single
    # wrap (d -/+ 2M) only shrinks |d|; no wrap can happen while that bound is below 2**23.
    u_max = a6_max * 4096 / i_decay if persistent else a6_max
    wrap_free = u_max < MAX_UV
    c_max = min(u_max, 3 * MAX_UV) + b_max
    sat_free = vth + c_max < MAX_UV - 1 and T * c_max < MAX_UV - 1
    v_max = max(vth + c_max, T * c_max) if sat_free else MAX_UV
    # the largest magnitude any intermediate reaches (decay products, sums before the clamp)
    peak = max(u_max * max(fu[0], 1), u_max + a6_max, v_max * max(fv[0], 1), v_max + c_max,
               u_max + 2 * MAX_UV)
    if peak < 2 ** 24 and wrap_free:
        dt = torch.float32  # every value an exactly represented integer
    elif peak < 2 ** 53:
        dt = torch.float64
    else:
        return _run_int(a, static, fu, fv, vth, b_eff, persistent, wrap_free, sat_free)
    src = a[0] if static else a
    a6 = src.to(dt) * 64
    if not persistent:  # u for all steps at once when the current does not persist
        c = a6 if wrap_free else _wrap(a6)
        if b_eff is not None:
            c = c + b_eff.to(dt)
    else:
        c = a6
    ku, kv = fu[0] / 2 ** fu[1], fv[0] / 2 ** fv[1]  # exact: p < 2**12
    out = torch.empty((T, *shape), dtype=torch.bool, device=a.device)
    v = torch.zeros(shape, dtype=dt, device=a.device)
    u = torch.zeros(shape, dtype=dt, device=a.device) if persistent else None
    bias_t = None if b_eff is None or not persistent else b_eff.to(dt).expand(shape)
    for t in range(T):
        ct = c if static else c[t]
        if persistent:
            u = u.mul_(ku).trunc_().add_(ct)
            if not wrap_free:
                u = _wrap(u)
            v = _fdecay_(v, kv).add_(u)
            if bias_t is not None:
                v.add_(bias_t)
        else:
            v = _fdecay_(v, kv).add_(ct)
        if not sat_free:
            v.clamp_(-(MAX_UV - 1), MAX_UV - 1)
        torch.gt(v, vth, out=out[t])
        v.masked_fill_(out[t], 0)
    return out.to(torch.float32)


def _fdecay_(x: torch.Tensor, k: float) -> torch.Tensor:
    """In place on exact-integer floats: trunc(x * k), k = p / 2**j (exact while |x| p is
    below the significand range, which the caller proved)."""
    if k == 0.0:
        return x.zero_()
    if k == 1.0:
        return x
    return x.mul_(k).trunc_()


def _run_int(a, static, fu, fv, vth, b_eff, persistent, wrap_free, sat_free):
    """int64 recurrence for inputs with no usable bound (the reference's arithmetic)."""
    T, shape, bits, dt = a.shape[0], a.shape[1:], 64, torch.int64
    src = a[0] if static else a
    a6 = src.to(dt) << ACT_SHIFT
    if not persistent:
        c = a6 if wrap_free else _wrap(a6)
        if b_eff is not None:
            c = c + b_eff.to(dt)
    else:
        c = a6
    out = torch.empty((T, *shape), dtype=torch.bool, device=a.device)
    v = torch.zeros(shape, dtype=dt, device=a.device)
    u = torch.zeros(shape, dtype=dt, device=a.device) if persistent else None
    bias_t = None if b_eff is None or not persistent else b_eff.to(dt).expand(shape)
    for t in range(T):
        ct = c if static else c[t]
        if persistent:
            u = _decay(u, fu, bits).add_(ct)
            if not wrap_free:
                u = _wrap(u)
            v = _decay(v, fv, bits).add_(u)
            if bias_t is not None:
                v.add_(bias_t)
        else:
            v = _decay(v, fv, bits).add_(ct)
        if not sat_free:
            v.clamp_(-(MAX_UV - 1), MAX_UV - 1)
        torch.gt(v, vth, out=out[t])
        v.masked_fill_(out[t], 0)
    return out.to(torch.float32)
