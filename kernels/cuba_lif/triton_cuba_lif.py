"""Fused multi-step float CUBA-LIF forward in Triton: one pass over T, I and V in registers.

Same fp32 operations in the same order as ``reference.py`` (NIR CubaLIF, semi-implicit Euler,
dt = 1), so the interpreter equals the reference bit for bit. Forward only: training runs the
reference with autograd (``op.py``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024


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
    for t in range(T):
        x = tl.load(x_ptr + t * N + offs, mask=mask, other=0.0).to(tl.float32)
        cur = cur + tl.math.div_rn(x - cur, tau_syn)
        h = v + tl.math.div_rn((v_leak - v) + cur, tau_mem)
        s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
        if HARD:
            v = h * (1.0 - s) + vr * s
        else:
            v = h - v_th * s
        tl.store(s_ptr + t * N + offs, s.to(s_ptr.dtype.element_ty), mask=mask)
    tl.store(i_ptr + offs, cur, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)


def cuba_lif_triton(
    x: torch.Tensor, tau_syn: float, tau_mem: float, v_th: float, v_reset: float | None,
    v_leak: float, i_init: torch.Tensor, v_init: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch: x [T, ...] contiguous float; i_init, v_init fp32 [...] contiguous.

    Returns (spikes [T, ...] x.dtype, i_last fp32 [...], v_last fp32 [...]).
    """
    T, N = x.shape[0], x[0].numel()
    s = torch.empty_like(x)
    i = torch.empty(x.shape[1:], dtype=torch.float32, device=x.device)
    v = torch.empty_like(i)
    if N == 0:
        return s, i, v
    block = min(BLOCK, triton.next_power_of_2(N))
    vr = 0.0 if v_reset is None else float(v_reset)
    _cuba_lif_fwd_kernel[(triton.cdiv(N, block),)](
        x, i_init, v_init, s, i, v, T, N, float(tau_syn), float(tau_mem), float(v_th), vr,
        float(v_leak), HARD=v_reset is not None, BLOCK=block,
    )
    return s, i, v
