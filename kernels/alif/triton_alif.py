"""Fused multi-step ALIF forward in Triton: one pass over T, V and a in registers.

Same fp32 operations in the same order as ``reference.py`` (LSNN adaptive threshold, Bellec et
al. 2018), so the interpreter matches the reference bit for bit. Forward only: training goes
through the reference with autograd (``op.py``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


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
    for t in range(T):
        x = tl.load(x_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        if DECAY_INPUT:
            h = v + tl.math.div_rn(x - (v - vr), tau)
        else:
            h = v - tl.math.div_rn(v - vr, tau) + x
        theta = v_th + beta * a
        s = tl.where(h - theta >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - theta * s
        a = rho * a + omr * s
        tl.store(s_ptr + t * N + offs, s.to(s_ptr.dtype.element_ty), mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(a_ptr + offs, a, mask=mask)


def alif_triton(
    x: torch.Tensor, tau: float, v_th: float, v_reset: float | None, beta: float,
    rho: float, omr: float, decay_input: bool, v_init: torch.Tensor, a_init: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch: x [T, ...] contiguous float; v_init, a_init fp32 [...] contiguous.

    Returns (spikes [T, ...] x.dtype, v_last fp32 [...], a_last fp32 [...]).
    """
    T, N = x.shape[0], x[0].numel()
    s = torch.empty_like(x)
    v = torch.empty(x.shape[1:], dtype=torch.float32, device=x.device)
    a = torch.empty_like(v)
    if N == 0:
        return s, v, a
    block = min(BLOCK, triton.next_power_of_2(N))
    vr = 0.0 if v_reset is None else float(v_reset)
    _alif_fwd_kernel[(triton.cdiv(N, block),)](
        x, v_init, a_init, s, v, a, T, N, float(tau), float(v_th), vr, float(beta),
        float(rho), float(omr), DECAY_INPUT=bool(decay_input), HARD=v_reset is not None,
        BLOCK=block,
    )
    return s, v, a
