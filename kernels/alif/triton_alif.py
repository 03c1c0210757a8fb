"""Fused multi-step ALIF in Triton: forward and backward kernels, launcher, autograd.

Forward: one pass over T with V and a in registers; the same fp32 operations in the same order
as ``reference.py`` (LSNN adaptive threshold, Bellec et al. 2018), so the interpreter matches
the reference bit for bit.

Backward: saves only x, v_init, a_init. The backward kernel re-runs the forward recurrence,
keeping H[t] and theta[t] of its block in register tiles [T_PAD, BLOCK], then runs the
reverse-time recurrence (u = H - theta, g = sg'(u), s_r = S or detached S):

    dS[t]      = dL/dS[t] + (1 - rho) dL/da[t] + [dL/dV[t] * dV/ds_r]   (bracket: no detach)
    dH[t]      = dS[t] g[t] + dL/dV[t] * dV/dH     (hard: 1 - S, soft: 1)
    dtheta[t]  = -dS[t] g[t] + [soft: -S[t] dL/dV[t]]
    dL/da[t-1] = rho dL/da[t] + beta dtheta[t]
    dL/dV[t-1] = dH[t] (1 - 1/tau);   dL/dX[t] = dH[t] (1/tau with decay_input, else 1)

with dV/ds_r = v_reset - H (hard) or -theta (soft). Equal to autograd through the reference up
to fp32 rounding.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._tuning import Tuned
from ..lif.surrogate import surrogate_id
from ..lif.triton_lif import FWD_CONFIGS, FWD_INTERP, surrogate_grad

BLOCK = 1024     # default forward block (first GPU config); the forward is autotuned on GPU
NUM_WARPS = 4
_BWD_TILE = 4096  # T_PAD * BLOCK fp32 values per register tile (two tiles: H and theta)


@triton.jit
def _alif_charge(v, x, tau, vr, DECAY_INPUT: tl.constexpr):
    if DECAY_INPUT:
        h = v + tl.math.div_rn(x - (v - vr), tau)
    else:
        h = v - tl.math.div_rn(v - vr, tau) + x
    return h


@triton.jit
def _alif_fwd_kernel(
    x_ptr, v0_ptr, a0_ptr, s_ptr, v_ptr, a_ptr,
    T, N, tau, v_th, vr, beta, rho, omr,
    DECAY_INPUT: tl.constexpr, HARD: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    cur = offs  # int64 element offset of (t, n): no int32 overflow for T * N >= 2**31
    for _t in range(T):
        x = tl.load(x_ptr + cur, mask=mask, other=0.0).to(tl.float32)
        h = _alif_charge(v, x, tau, vr, DECAY_INPUT)
        theta = v_th + beta * a
        s = tl.where(h - theta >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - theta * s
        a = rho * a + omr * s
        tl.store(s_ptr + cur, s.to(s_ptr.dtype.element_ty), mask=mask)
        cur += N
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(a_ptr + offs, a, mask=mask)


@triton.jit
def _alif_bwd_kernel(
    x_ptr, v0_ptr, a0_ptr, gs_ptr, gv_ptr, ga_ptr, gx_ptr, gv0_ptr, ga0_ptr,
    N, tau, v_th, vr, beta, rho, omr, alpha,
    T: tl.constexpr, T_PAD: tl.constexpr, BLOCK: tl.constexpr,
    DECAY_INPUT: tl.constexpr, HARD: tl.constexpr, DETACH: tl.constexpr, SURR: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    rows = tl.arange(0, T_PAD)[:, None]
    # phase 1: recompute H[t] and theta[t] into register tiles
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    hs = tl.zeros([T_PAD, BLOCK], dtype=tl.float32)
    ths = tl.zeros([T_PAD, BLOCK], dtype=tl.float32)
    cur = offs  # int64 element offset of (t, n)
    for t in range(T):
        x = tl.load(x_ptr + cur, mask=mask, other=0.0).to(tl.float32)
        h = _alif_charge(v, x, tau, vr, DECAY_INPUT)
        theta = v_th + beta * a
        s = tl.where(h - theta >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - theta * s
        a = rho * a + omr * s
        hs = tl.where(rows == t, h[None, :], hs)
        ths = tl.where(rows == t, theta[None, :], ths)
        cur += N
    # phase 2: reverse-time recurrence
    gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    ga = tl.load(ga_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dh_dv = 1.0 - 1.0 / tau
    if DECAY_INPUT:
        dh_dx = 1.0 / tau
    else:
        dh_dx = 1.0
    for k in range(T):
        t = T - 1 - k
        cur -= N
        h = tl.sum(tl.where(rows == t, hs, 0.0), axis=0)
        theta = tl.sum(tl.where(rows == t, ths, 0.0), axis=0)
        u = h - theta
        s = tl.where(u >= 0.0, 1.0, 0.0)
        g = surrogate_grad(u, alpha, SURR)
        gs = tl.load(gs_ptr + cur, mask=mask, other=0.0).to(tl.float32)
        ds = gs + omr * ga
        if not DETACH:
            if HARD:
                ds += gv * (vr - h)
            else:
                ds += gv * (-theta)
        du = ds * g
        if HARD:
            dh = du + gv * (1.0 - s)
            dth = -du
        else:
            dh = du + gv
            dth = -du - s * gv
        ga = rho * ga + beta * dth
        gv = dh * dh_dv
        tl.store(gx_ptr + cur, dh * dh_dx, mask=mask)
    tl.store(gv0_ptr + offs, gv, mask=mask)
    tl.store(ga0_ptr + offs, ga, mask=mask)


def bwd_block(T: int, N: int) -> tuple[int, int]:
    """(T_PAD, BLOCK) of the backward register tiles: at most 4096 fp32 values each."""
    t_pad = triton.next_power_of_2(T)
    block = max(1, min(BLOCK, _BWD_TILE // t_pad, triton.next_power_of_2(N)))
    return t_pad, block


_ALIF_FWD = Tuned(_alif_fwd_kernel, FWD_CONFIGS, key=["N", "T"], interp=FWD_INTERP)


class ALIFTritonFn(torch.autograd.Function):
    """Autograd wrapper of the ALIF kernels on x [T, N]; saves x, v_init, a_init only."""

    @staticmethod
    def forward(ctx, x2, v0, a0, tau, v_th, vr, beta, rho, omr, decay_input, hard, detach,
                surr, alpha):
        T, N = x2.shape
        s = torch.empty_like(x2)
        v = torch.empty(N, dtype=torch.float32, device=x2.device)
        a = torch.empty_like(v)
        if N:
            _ALIF_FWD[lambda meta: (triton.cdiv(N, meta["BLOCK"]),)](
                x2, v0, a0, s, v, a, T, N, tau, v_th, vr, beta, rho, omr,
                DECAY_INPUT=decay_input, HARD=hard,
            )
        ctx.save_for_backward(x2, v0, a0)
        ctx.cfg = (tau, v_th, vr, beta, rho, omr, decay_input, hard, detach, surr, alpha)
        return s, v, a

    @staticmethod
    def backward(ctx, gs, gv, ga):
        x2, v0, a0 = ctx.saved_tensors
        tau, v_th, vr, beta, rho, omr, decay_input, hard, detach, surr, alpha = ctx.cfg
        T, N = x2.shape
        gs = torch.zeros_like(x2) if gs is None else gs.contiguous()
        gv = torch.zeros_like(v0) if gv is None else gv.contiguous()
        ga = torch.zeros_like(a0) if ga is None else ga.contiguous()
        gx = torch.empty(x2.shape, dtype=torch.float32, device=x2.device)
        gv0, ga0 = torch.empty_like(v0), torch.empty_like(a0)
        if N:
            t_pad, block = bwd_block(T, N)
            _alif_bwd_kernel[(triton.cdiv(N, block),)](
                x2, v0, a0, gs, gv, ga, gx, gv0, ga0, N, tau, v_th, vr, beta, rho, omr, alpha,
                T=T, T_PAD=t_pad, BLOCK=block, DECAY_INPUT=decay_input, HARD=hard,
                DETACH=detach, SURR=surr,
            )
        return (gx.to(x2.dtype), gv0, ga0) + (None,) * 11


def alif_triton(
    x: torch.Tensor, tau: float, v_th: float, v_reset: float | None, beta: float,
    rho: float, omr: float, decay_input: bool, detach_reset: bool, surrogate: str,
    alpha: float, v_init: torch.Tensor, a_init: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused ALIF via Triton (differentiable); arguments validated by ``op.alif_multistep``.

    Args: x [T, ...] contiguous float; v_init, a_init fp32 [...] (gradients flow to them if
    they require grad); the rest as ``alif_reference``, with (rho, 1 - rho) precomputed.
    Returns: (spikes [T, ...] x.dtype, v_last fp32 [...], a_last fp32 [...]).
    """
    T, rest = x.shape[0], tuple(x.shape[1:])
    vr = 0.0 if v_reset is None else float(v_reset)
    s, v, a = ALIFTritonFn.apply(
        x.reshape(T, -1), v_init.reshape(-1), a_init.reshape(-1), float(tau), float(v_th), vr,
        float(beta), float(rho), float(omr), bool(decay_input), v_reset is not None,
        bool(detach_reset), surrogate_id(surrogate), float(alpha),
    )
    return s.reshape(x.shape), v.reshape(rest), a.reshape(rest)
