"""Fused multi-step float CUBA-LIF in Triton: forward and backward kernels, launcher, autograd.

Forward: one pass over T with I and V in registers; the same fp32 operations in the same order
as ``reference.py`` (NIR CubaLIF, semi-implicit Euler, dt = 1), so the interpreter equals the
reference bit for bit.

Backward: saves only x, i_init, v_init. The kernel re-runs the forward recurrence keeping H[t]
in a register tile [T_PAD, BLOCK], then runs the reverse-time recurrence (g = sg'(H - v_th)):

    dH[t]      = dL/dS[t] g[t] + dL/dV[t] dV/dH
                 (hard: 1 - S [+ (v_reset - H) g];  soft: 1 [- v_th g]; brackets if not detached)
    dI[t]      = dL/dI[t] + dH[t] / tau_mem
    dL/dX[t]   = dI[t] / tau_syn;   dL/dI[t-1] = dI[t] (1 - 1/tau_syn)
    dL/dV[t-1] = dH[t] (1 - 1/tau_mem)
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._tuning import Tuned
from ..alif.triton_alif import bwd_block
from ..lif.surrogate import surrogate_id
from ..lif.triton_lif import FWD_CONFIGS, FWD_INTERP, surrogate_grad


@triton.jit
def _cuba_lif_fwd_kernel(
    x_ptr, i0_ptr, v0_ptr, s_ptr, i_ptr, v_ptr,
    T, N, tau_syn, tau_mem, v_th, vr, v_leak,
    HARD: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    cur = tl.load(i0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    off = offs  # int64 element offset of (t, n): no int32 overflow for T * N >= 2**31
    for _t in range(T):
        x = tl.load(x_ptr + off, mask=mask, other=0.0).to(tl.float32)
        cur = cur + tl.math.div_rn(x - cur, tau_syn)
        h = v + tl.math.div_rn((v_leak - v) + cur, tau_mem)
        s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - v_th * s
        tl.store(s_ptr + off, s.to(s_ptr.dtype.element_ty), mask=mask)
        off += N
    tl.store(i_ptr + offs, cur, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)


@triton.jit
def _cuba_lif_bwd_kernel(
    x_ptr, i0_ptr, v0_ptr, gs_ptr, gi_ptr, gv_ptr, gx_ptr, gi0_ptr, gv0_ptr,
    N, tau_syn, tau_mem, v_th, vr, v_leak, alpha,
    T: tl.constexpr, T_PAD: tl.constexpr, BLOCK: tl.constexpr,
    HARD: tl.constexpr, DETACH: tl.constexpr, SURR: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    rows = tl.arange(0, T_PAD)[:, None]
    cur = tl.load(i0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    hs = tl.zeros([T_PAD, BLOCK], dtype=tl.float32)
    off = offs  # int64 element offset of (t, n)
    for t in range(T):
        x = tl.load(x_ptr + off, mask=mask, other=0.0).to(tl.float32)
        cur = cur + tl.math.div_rn(x - cur, tau_syn)
        h = v + tl.math.div_rn((v_leak - v) + cur, tau_mem)
        s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - v_th * s
        hs = tl.where(rows == t, h[None, :], hs)
        off += N
    gi = tl.load(gi_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    for k in range(T):
        t = T - 1 - k
        off -= N
        h = tl.sum(tl.where(rows == t, hs, 0.0), axis=0)
        u = h - v_th
        s = tl.where(u >= 0.0, 1.0, 0.0)
        g = surrogate_grad(u, alpha, SURR)
        gs = tl.load(gs_ptr + off, mask=mask, other=0.0).to(tl.float32)
        if HARD:
            dvdh = 1.0 - s
            if not DETACH:
                dvdh += (vr - h) * g
        else:
            dvdh = 1.0 - 0.0 * s
            if not DETACH:
                dvdh -= v_th * g
        dh = gs * g + gv * dvdh
        di = gi + dh / tau_mem
        tl.store(gx_ptr + off, di / tau_syn, mask=mask)
        gi = di * (1.0 - 1.0 / tau_syn)
        gv = dh * (1.0 - 1.0 / tau_mem)
    tl.store(gi0_ptr + offs, gi, mask=mask)
    tl.store(gv0_ptr + offs, gv, mask=mask)


_CUBA_LIF_FWD = Tuned(_cuba_lif_fwd_kernel, FWD_CONFIGS, key=["N", "T"], interp=FWD_INTERP)


class CubaLIFTritonFn(torch.autograd.Function):
    """Autograd wrapper of the CUBA-LIF kernels on x [T, N]; saves x, i_init, v_init only."""

    @staticmethod
    def forward(ctx, x2, i0, v0, tau_syn, tau_mem, v_th, vr, v_leak, hard, detach, surr,
                alpha):
        T, N = x2.shape
        s = torch.empty_like(x2)
        i = torch.empty(N, dtype=torch.float32, device=x2.device)
        v = torch.empty_like(i)
        if N:
            _CUBA_LIF_FWD[lambda meta: (triton.cdiv(N, meta["BLOCK"]),)](
                x2, i0, v0, s, i, v, T, N, tau_syn, tau_mem, v_th, vr, v_leak, HARD=hard,
            )
        ctx.save_for_backward(x2, i0, v0)
        ctx.cfg = (tau_syn, tau_mem, v_th, vr, v_leak, hard, detach, surr, alpha)
        return s, i, v

    @staticmethod
    def backward(ctx, gs, gi, gv):
        x2, i0, v0 = ctx.saved_tensors
        tau_syn, tau_mem, v_th, vr, v_leak, hard, detach, surr, alpha = ctx.cfg
        T, N = x2.shape
        gs = torch.zeros_like(x2) if gs is None else gs.contiguous()
        gi = torch.zeros_like(i0) if gi is None else gi.contiguous()
        gv = torch.zeros_like(v0) if gv is None else gv.contiguous()
        gx = torch.empty(x2.shape, dtype=torch.float32, device=x2.device)
        gi0, gv0 = torch.empty_like(i0), torch.empty_like(v0)
        if N:
            t_pad, block = bwd_block(T, N)
            _cuba_lif_bwd_kernel[(triton.cdiv(N, block),)](
                x2, i0, v0, gs, gi, gv, gx, gi0, gv0, N, tau_syn, tau_mem, v_th, vr, v_leak,
                alpha, T=T, T_PAD=t_pad, BLOCK=block, HARD=hard, DETACH=detach, SURR=surr,
            )
        return (gx.to(x2.dtype), gi0, gv0) + (None,) * 9


def cuba_lif_triton(
    x: torch.Tensor, tau_syn: float, tau_mem: float, v_th: float, v_reset: float | None,
    v_leak: float, detach_reset: bool, surrogate: str, alpha: float,
    i_init: torch.Tensor, v_init: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused CUBA-LIF via Triton (differentiable); arguments validated by ``op``.

    Args: x [T, ...] contiguous float; i_init, v_init fp32 [...] (gradients flow to them if
    they require grad); the rest as ``cuba_lif_reference``.
    Returns: (spikes [T, ...] x.dtype, i_last fp32 [...], v_last fp32 [...]).
    """
    T, rest = x.shape[0], tuple(x.shape[1:])
    vr = 0.0 if v_reset is None else float(v_reset)
    s, i, v = CubaLIFTritonFn.apply(
        x.reshape(T, -1), i_init.reshape(-1), v_init.reshape(-1), float(tau_syn),
        float(tau_mem), float(v_th), vr, float(v_leak), v_reset is not None,
        bool(detach_reset), surrogate_id(surrogate), float(alpha),
    )
    return s.reshape(x.shape), i.reshape(rest), v.reshape(rest)
