"""Fused multi-step LIF in Triton (float mode): forward and backward kernels, launcher, autograd.

Layout: the input X [T, ...] is viewed as [T, N] (N = product of the trailing dims, contiguous).
One program owns a block of BLOCK neurons and walks over the T timesteps with the membrane
potential held in registers, so X is read once and the spikes written once (minimal traffic).

Dynamics (identical operation order to ``reference.py``, hence bit-identical fp32 results
under the interpreter; SpikingJelly LIFNode, Fang et al. ICCV 2021 eq. 1-3):

    decay_input=True : H = V + (X - (V - v_reset)) / tau
    decay_input=False: H = V - (V - v_reset) / tau + X       (tau = inf: H = V + X, IF neuron)
    S = (H - v_th >= 0);   hard: V = H * (1 - S) + v_reset * S;   soft: V = H - v_th * S

Divisions use ``tl.math.div_rn`` (IEEE round-to-nearest) so a GPU build does not switch to the
approximate divide (shared/reference/triton.md). Arithmetic is fp32 for every input dtype
(fp16/bf16 are converted right after the load; bf16 arithmetic is wrong in the interpreter).

What is saved for backward: only X (the input, in its own dtype, already alive in most graphs)
and v_init when given. Neither H nor V nor the spikes are stored: the backward kernel first
re-runs the forward recurrence from X and v_init, keeping H of its block in a register tile
(no global memory), then runs the reverse-time recurrence

    dL/dH[t] = dL/dS[t] * sg'(H[t] - v_th) + dL/dV[t] * dV[t]/dH[t]
    dL/dX[t] = dL/dH[t] * dH/dX            (1/tau with decay_input, else 1)
    dL/dV[t-1] = dL/dH[t] * (1 - 1/tau)

with dV/dH = (1 - S) [+ (v_reset - H) sg'] (hard) or 1 [- v_th sg'] (soft); the bracketed
reset term is dropped when detach_reset=True. dL/dv_init = dL/dV[-1].
The tile holds at most 16 steps: for T > 16 the backward first runs the forward once keeping
V at every 16th step (checkpoints), then recomputes and differentiates one 16-step chunk at a
time, last chunk first (X is read twice; the register tile stays [16, BLOCK] at any T).

tau = inf (decay_input=False only) is the compile-time branch IS_IF: H = V + X with no division
and dH/dV = 1 (1/tau = 0), exactly what the reference computes since (V - v_reset) / inf = 0.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .._backend import triton_interpreted
from .._tuning import Tuned
from .surrogate import surrogate_id

# Forward: neurons per program. Under the CPU interpreter the cost is per program and loop
# iteration while the block is vectorised by NumPy, so one large block is used there; on a GPU
# the block, num_warps and num_stages are autotuned on (N, T) (kernels/_tuning.py). Every GPU
# config keeps >= 4 consecutive fp32 per thread (BLOCK >= 4 * 32 * num_warps): 128-bit loads.
FWD_CONFIGS = [
    {"BLOCK": 1024, "num_warps": 4, "num_stages": 1},
    {"BLOCK": 2048, "num_warps": 4, "num_stages": 1},
    {"BLOCK": 2048, "num_warps": 8, "num_stages": 2},
    {"BLOCK": 4096, "num_warps": 8, "num_stages": 2},
]
FWD_INTERP = {"BLOCK": 8192}
# Backward register tile [CHUNK_PAD, BLOCK] (see bwd_config): 4 consecutive neurons per
# thread at every T (at T >= 32 the old [T_PAD, BLOCK] tile of 4096 values dropped to one
# neuron per thread and scalar loads); T > 16 is processed in chunks of 16 steps.
_BWD_INTERP_TILE = 32768
MAX_CHUNK = 16


@triton.jit
def _charge(v, x, tau, vr, DECAY_INPUT: tl.constexpr, IS_IF: tl.constexpr):
    """H[t] from V[t-1] and X[t], in the reference's operation order."""
    if DECAY_INPUT:
        h = v + tl.math.div_rn(x - (v - vr), tau)
    elif IS_IF:
        h = v + x
    else:
        h = v - tl.math.div_rn(v - vr, tau) + x
    return h


@triton.jit
def _fire_reset(h, v_th, vr, HARD: tl.constexpr):
    """(S[t], V[t]) from H[t]: Heaviside spike, then hard or soft reset."""
    s = tl.where(h - v_th >= 0.0, 1.0, 0.0)
    if HARD:
        v = h * (1.0 - s) + vr * s
    else:
        v = h - v_th * s
    return s, v


@triton.jit
def surrogate_grad(u, alpha, SURR: tl.constexpr):
    """sg'(u), u = H - v_th; formulas and ids of surrogate.py (0 sigmoid, 1 atan, 2 fast)."""
    if SURR == 0:
        sg = tl.sigmoid(alpha * u)
        g = alpha * sg * (1.0 - sg)
    elif SURR == 1:
        z = 1.5707963267948966 * alpha * u
        g = (alpha / 2.0) / (1.0 + z * z)
    else:
        d = alpha * tl.abs(u) + 1.0
        g = 1.0 / (d * d)
    return g


@triton.jit
def _lif_fwd_kernel(
    x_ptr, v_init_ptr, s_ptr, v_last_ptr,
    N, tau, v_th, vr,
    T: tl.constexpr, BLOCK: tl.constexpr,
    DECAY_INPUT: tl.constexpr, IS_IF: tl.constexpr, HARD: tl.constexpr,
    HAS_V_INIT: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    if HAS_V_INIT:
        v = tl.load(v_init_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BLOCK], dtype=tl.float32) + vr
    cur = offs  # int64 element offset of (t, n): no int32 overflow for T * N >= 2**31
    for _t in range(T):
        x = tl.load(x_ptr + cur, mask=mask, other=0.0).to(tl.float32)
        h = _charge(v, x, tau, vr, DECAY_INPUT, IS_IF)
        s, v = _fire_reset(h, v_th, vr, HARD)
        tl.store(s_ptr + cur, s.to(s_ptr.dtype.element_ty), mask=mask)
        cur += N
    tl.store(v_last_ptr + offs, v, mask=mask)


@triton.jit
def _lif_bwd_kernel(
    x_ptr, v_init_ptr, gs_ptr, gv_ptr, gx_ptr, gvi_ptr,
    N, tau, v_th, vr, alpha,
    T: tl.constexpr, CHUNK: tl.constexpr, CHUNK_PAD: tl.constexpr, NCK_PAD: tl.constexpr,
    BLOCK: tl.constexpr,
    DECAY_INPUT: tl.constexpr, IS_IF: tl.constexpr, HARD: tl.constexpr,
    DETACH: tl.constexpr, SURR: tl.constexpr, HAS_V_INIT: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, WANT_GVI: tl.constexpr,
):
    # T steps in NCK = cdiv(T, CHUNK) chunks of CHUNK steps (one chunk when T <= 16).
    NCK: tl.constexpr = (T + CHUNK - 1) // CHUNK
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    rows = tl.arange(0, CHUNK_PAD)[:, None]
    if HAS_V_INIT:
        v = tl.load(v_init_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BLOCK], dtype=tl.float32) + vr
    # int64 offsets: one chunk is CHUNK * N elements; no int32 overflow for T * N >= 2**31
    step = (tl.zeros([BLOCK], dtype=tl.int64) + N) * CHUNK
    ck_rows = tl.arange(0, NCK_PAD)[:, None]
    ck = tl.zeros([NCK_PAD, BLOCK], dtype=tl.float32)
    if NCK > 1:
        # Phase 0 (T > CHUNK only): a forward pass keeping V at the start of every chunk
        # (checkpoints), so that the H tile below holds one chunk, not all T steps.
        cur = offs
        for c in range(NCK - 1):
            ck = tl.where(ck_rows == c, v[None, :], ck)
            for _j in range(CHUNK):
                x = tl.load(x_ptr + cur, mask=mask, other=0.0).to(tl.float32)
                h = _charge(v, x, tau, vr, DECAY_INPUT, IS_IF)
                s, v = _fire_reset(h, v_th, vr, HARD)
                cur += N
        ck = tl.where(ck_rows == NCK - 1, v[None, :], ck)
    if IS_IF:
        dh_dv = 1.0
    else:
        dh_dv = 1.0 - 1.0 / tau
    if DECAY_INPUT:
        dh_dx = 1.0 / tau
    else:
        dh_dx = 1.0
    if HAS_GV:
        gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        gv = tl.zeros([BLOCK], dtype=tl.float32)
    start = offs + step * (NCK - 1)
    for ci in range(NCK):
        c = NCK - 1 - ci
        if NCK > 1:
            v = tl.sum(tl.where(ck_rows == c, ck, 0.0), axis=0)
        # Phase 1: recompute H of this chunk into a register tile (the forward stored none).
        hs = tl.zeros([CHUNK_PAD, BLOCK], dtype=tl.float32)
        cur = start
        for j in range(CHUNK):
            valid = c * CHUNK + j < T
            x = tl.load(x_ptr + cur, mask=mask & valid, other=0.0).to(tl.float32)
            h = _charge(v, x, tau, vr, DECAY_INPUT, IS_IF)
            s, v = _fire_reset(h, v_th, vr, HARD)
            hs = tl.where(rows == j, h[None, :], hs)
            cur += N
        # Phase 2: reverse-time recurrence of the gradients over the chunk.
        for jj in range(CHUNK):
            j = CHUNK - 1 - jj
            valid = c * CHUNK + j < T
            cur -= N
            h = tl.sum(tl.where(rows == j, hs, 0.0), axis=0)
            u = h - v_th
            s = tl.where(u >= 0.0, 1.0, 0.0)
            sg = surrogate_grad(u, alpha, SURR)
            if HARD:
                dv_dh = 1.0 - s
                if not DETACH:
                    dv_dh += (vr - h) * sg
            else:
                dv_dh = tl.zeros([BLOCK], dtype=tl.float32) + 1.0
                if not DETACH:
                    dv_dh -= v_th * sg
            gh = gv * dv_dh
            if HAS_GS:
                gs = tl.load(gs_ptr + cur, mask=mask & valid, other=0.0).to(tl.float32)
                gh += gs * sg
            tl.store(gx_ptr + cur, (gh * dh_dx).to(gx_ptr.dtype.element_ty), mask=mask & valid)
            gv = tl.where(valid, gh * dh_dv, gv)
        start -= step
    if WANT_GVI:
        tl.store(gvi_ptr + offs, gv.to(gvi_ptr.dtype.element_ty), mask=mask)


def fwd_config(interpreted: bool | None = None) -> dict:
    """Default forward config (the interpreter's, or the first GPU autotune config)."""
    interpreted = triton_interpreted() if interpreted is None else interpreted
    return dict(FWD_INTERP) if interpreted else dict(FWD_CONFIGS[0])


def bwd_config(T: int, interpreted: bool | None = None) -> dict:
    """Backward launch config for T timesteps: CHUNK, CHUNK_PAD, NCK_PAD, BLOCK, num_warps.

    The H register tile holds one chunk of CHUNK steps (CHUNK_PAD rows, the next power of
    two): CHUNK = T up to 16, 16 up to T = 32, 8 beyond; T > CHUNK adds a checkpoint tile of V
    at each chunk start (NCK_PAD rows) and a second forward recomputation. GPU: BLOCK 512
    over 4 warps, i.e. 4 consecutive neurons per thread (128-bit fp32 loads) at every T, with
    (CHUNK_PAD + NCK_PAD) * 4 tile values per thread (no spill in the AOT check up to T = 64,
    triton 3.6 and 3.7).
    Interpreter: one chunk per T <= 16 and blocks of up to 8192 neurons.
    """
    interpreted = triton_interpreted() if interpreted is None else interpreted
    # more than 2 chunks: 8-step chunks keep tile + checkpoints at <= 64 + 4 * NCK_PAD values
    chunk = min(T, MAX_CHUNK if T <= 2 * MAX_CHUNK else MAX_CHUNK // 2)
    chunk_pad = triton.next_power_of_2(chunk)
    nck_pad = triton.next_power_of_2(triton.cdiv(T, chunk))
    if interpreted:
        block = max(16, min(FWD_INTERP["BLOCK"], _BWD_INTERP_TILE // chunk_pad))
        warps = 4
    else:
        block, warps = 512, 4
    return {"CHUNK": chunk, "CHUNK_PAD": chunk_pad, "NCK_PAD": nck_pad, "BLOCK": block,
            "num_warps": warps}


_LIF_FWD = Tuned(_lif_fwd_kernel, FWD_CONFIGS, key=["N", "T"], interp=FWD_INTERP)


def launch_forward(x2, v_init, tau, v_th, vr, decay_input, is_if, hard, spike_dtype):
    """Launch the forward kernel on x2 [T, N] (contiguous fp32/fp16/bf16).

    v_init: [N] or None (start at ``vr``); tau in timesteps (``inf`` only with is_if=True);
    v_th, vr: threshold and reset potential (vr = 0 for soft reset, hard=False).
    Returns (spikes [T, N] in spike_dtype, v_last [N] fp32). Grid: cdiv(N, BLOCK) programs.
    """
    T, N = x2.shape
    spikes = torch.empty((T, N), dtype=spike_dtype, device=x2.device)
    v_last = torch.empty((N,), dtype=torch.float32, device=x2.device)
    _LIF_FWD[lambda meta: (triton.cdiv(N, meta["BLOCK"]),)](
        x2, v_init if v_init is not None else v_last, spikes, v_last,
        N, tau, v_th, vr,
        T=T, DECAY_INPUT=decay_input, IS_IF=is_if, HARD=hard,
        HAS_V_INIT=v_init is not None,
    )
    return spikes, v_last


def launch_backward(x2, v_init, grad_s, grad_v, tau, v_th, vr, alpha, decay_input, is_if,
                    hard, detach_reset, surr, want_gvi):
    """Launch the backward kernel (recomputes H from x2 [T, N] and v_init [N] or None).

    grad_s: dL/dS [T, N] or None; grad_v: dL/dV[T-1] [N] or None; surr: surrogate id.
    Returns (grad_x [T, N] in x2.dtype, grad_v_init [N] in v_init.dtype, or None unless
    want_gvi). Grid: cdiv(N, BLOCK) programs with a [CHUNK_PAD, BLOCK] register tile each.
    """
    T, N = x2.shape
    # The interpreter truncates fp32 -> bf16 stores (GPUs round to nearest): when interpreted,
    # bf16 gradients are written in fp32 and rounded by torch afterwards.
    fix_bf16 = triton_interpreted()
    gx_dtype = torch.float32 if fix_bf16 and x2.dtype == torch.bfloat16 else x2.dtype
    grad_x = torch.empty(x2.shape, dtype=gx_dtype, device=x2.device)
    grad_vi = None
    if want_gvi:
        gvi_dtype = torch.float32 if fix_bf16 and v_init.dtype == torch.bfloat16 else v_init.dtype
        grad_vi = torch.empty(v_init.shape, dtype=gvi_dtype, device=v_init.device)
    cfg = bwd_config(T)
    grid = (triton.cdiv(N, cfg["BLOCK"]),)
    _lif_bwd_kernel[grid](
        x2, v_init if v_init is not None else grad_x,
        grad_s if grad_s is not None else grad_x, grad_v if grad_v is not None else grad_x,
        grad_x, grad_vi if grad_vi is not None else grad_x,
        N, tau, v_th, vr, alpha,
        T=T, DECAY_INPUT=decay_input, IS_IF=is_if, HARD=hard,
        DETACH=detach_reset, SURR=surr, HAS_V_INIT=v_init is not None,
        HAS_GS=grad_s is not None, HAS_GV=grad_v is not None, WANT_GVI=want_gvi, **cfg,
    )
    if grad_vi is not None:
        grad_vi = grad_vi.to(v_init.dtype)
    return grad_x.to(x2.dtype), grad_vi


class LIFTritonFn(torch.autograd.Function):
    """Autograd wrapper: forward/backward kernels above. Saves x [T, N] and v_init [N] only."""

    @staticmethod
    def forward(ctx, x2, v_init, tau, v_th, vr, decay_input, is_if, hard, detach_reset, surr,
                alpha, spike_dtype):
        spikes, v_last = launch_forward(x2, v_init, tau, v_th, vr, decay_input, is_if, hard,
                                        spike_dtype)
        ctx.save_for_backward(x2, v_init)
        ctx.cfg = (tau, v_th, vr, alpha, decay_input, is_if, hard, detach_reset, surr)
        if spike_dtype == torch.uint8:
            ctx.mark_non_differentiable(spikes)
        return spikes, v_last

    @staticmethod
    def backward(ctx, grad_s, grad_v):
        x2, v_init = ctx.saved_tensors
        tau, v_th, vr, alpha, decay_input, is_if, hard, detach_reset, surr = ctx.cfg
        if grad_s is not None:
            grad_s = grad_s.contiguous() if grad_s.is_floating_point() else None
        if grad_v is not None:
            grad_v = grad_v.contiguous()
        want_gvi = v_init is not None and ctx.needs_input_grad[1]
        grad_x, grad_vi = launch_backward(x2, v_init, grad_s, grad_v, tau, v_th, vr, alpha,
                                          decay_input, is_if, hard, detach_reset, surr, want_gvi)
        return grad_x, grad_vi, *([None] * 10)


def lif_triton(
    x: torch.Tensor,
    tau: float,
    v_th: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    v_init: torch.Tensor | None,
    spike_dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused multi-step LIF via Triton; arguments already validated by ``op.lif_multistep``.

    Args:
        x: [T, ...] contiguous fp32/fp16/bf16 input current.
        tau: time constant (timesteps); ``inf`` only with decay_input=False (IF neuron).
        v_th, v_reset (None = soft reset), decay_input, detach_reset: LIF parameters.
        surrogate, alpha: surrogate gradient name and sharpness (surrogate.py).
        v_init: [...] initial potential or None (start at v_reset, 0 for soft reset).
        spike_dtype: output spike dtype (None = x.dtype; torch.uint8 gives no gradient).

    Returns:
        (spikes [T, ...] in spike_dtype, v_last [...] fp32), equal to ``lif_reference``.

    Raises:
        ValueError: tau = inf with decay_input=True (the input would be divided by inf).
    """
    if math.isinf(tau) and decay_input:
        raise ValueError("tau = inf needs decay_input=False (an IF neuron); got decay_input=True")
    T = x.shape[0]
    rest = tuple(x.shape[1:])
    x2 = x.reshape(T, -1)
    vi = None if v_init is None else v_init.contiguous().reshape(-1)
    vr = 0.0 if v_reset is None else float(v_reset)
    spikes, v_last = LIFTritonFn.apply(
        x2, vi, float(tau), float(v_th), vr, bool(decay_input), math.isinf(tau),
        v_reset is not None, bool(detach_reset), surrogate_id(surrogate), float(alpha),
        x.dtype if spike_dtype is None else spike_dtype,
    )
    return spikes.reshape((T, *rest)), v_last.reshape(rest)
