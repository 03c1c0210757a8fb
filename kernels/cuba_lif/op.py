"""Public multi-step float CUBA-LIF op: validation, then the Triton kernel or the reference."""

from __future__ import annotations

import torch

from stc.errors import check_positive, check_tensor, check_timesteps

from .._backend import resolve_backend
from ..alif.op import check_state
from ..lif.surrogate import DEFAULT_ALPHA, surrogate_id
from .reference import cuba_lif_reference

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def cuba_lif_multistep(
    x: torch.Tensor,
    tau_syn: float = 5.0,
    tau_mem: float = 10.0,
    v_th: float = 1.0,
    v_reset: float | None = 0.0,
    v_leak: float = 0.0,
    detach_reset: bool = True,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    i_init: torch.Tensor | None = None,
    v_init: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multi-step current-based LIF (NIR CubaLIF, dt = 1 timestep) over T timesteps.

    I[t] = I[t-1] + (X[t] - I[t-1]) / tau_syn;  H[t] = V[t-1] + ((v_leak - V[t-1]) + I[t]) /
    tau_mem;  S[t] = H[t] >= v_th;  hard or soft reset (``reference.py``).

    Args:
        x: synaptic input [T, ...] (already weighted), fp32 / fp16 / bf16, contiguous.
        tau_syn, tau_mem: synaptic and membrane time constants in timesteps (> 0).
        v_th: threshold; v_reset: hard-reset potential or None (soft reset); v_leak: resting
            potential the membrane decays to.
        detach_reset, surrogate, alpha: as ``stc.kernels.lif.lif_multistep``.
        i_init, v_init: initial I and V, float [...] = x.shape[1:]; default 0 and v_reset
            (0 for soft reset).
        backend: "auto" | "triton" | "torch". The Triton path has fused forward and backward
            kernels (``triton_cuba_lif.py``); the torch path is the reference with autograd.

    Returns:
        (spikes [T, ...] in x.dtype, i_last [...] fp32, v_last [...] fp32).

    Raises:
        TypeError: x or a state not a tensor / of an unsupported dtype.
        ValueError: rank < 1, T = 0, NaN/inf, non-contiguous x, tau_syn or tau_mem <= 0,
            state shape/device mismatch, unknown surrogate or backend.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: NIR CubaLIF (Pedersen et al., Nat. Commun. 15, 8122, 2024; nir.CubaLIF);
    Norse ``LIFBoxFeedForwardCell`` / Lava ``LIF`` for the update order.
    """
    check_tensor("x", x, min_dim=1, dtypes=FLOAT_DTYPES, contiguous=True)
    check_timesteps("x", x)
    check_positive("tau_syn", tau_syn)
    check_positive("tau_mem", tau_mem)
    surrogate_id(surrogate)
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_positive("alpha", alpha)
    check_state("i_init", i_init, x)
    check_state("v_init", v_init, x)
    which = resolve_backend(backend, x.device)
    if which == "torch":
        return cuba_lif_reference(x, tau_syn, tau_mem, v_th, v_reset, v_leak, detach_reset,
                                  surrogate, alpha, i_init, v_init)
    from .triton_cuba_lif import cuba_lif_triton

    v0 = 0.0 if v_reset is None else float(v_reset)
    i_0 = (torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device) if i_init is None
           else i_init.to(torch.float32))
    v_0 = (torch.full(x.shape[1:], v0, dtype=torch.float32, device=x.device) if v_init is None
           else v_init.to(torch.float32))
    return cuba_lif_triton(x, tau_syn, tau_mem, v_th, v_reset, v_leak, detach_reset, surrogate,
                           alpha, i_0.contiguous(), v_0.contiguous())
