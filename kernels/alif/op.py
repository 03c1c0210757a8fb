"""Public multi-step ALIF op: validation, then the Triton forward kernel or the reference."""

from __future__ import annotations

import torch

from stc.errors import check_positive, check_same_device, check_tensor, check_timesteps

from .._backend import resolve_backend
from ..lif.surrogate import DEFAULT_ALPHA, surrogate_id
from .reference import adaptation_decay, alif_reference

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_state(name: str, s: torch.Tensor | None, x: torch.Tensor) -> None:
    """Raise TypeError/ValueError unless ``s`` is None or a float tensor of shape x.shape[1:]."""
    if s is None:
        return
    check_tensor(name, s, dtypes=FLOAT_DTYPES)
    check_same_device(x=x, **{name: s})
    if tuple(s.shape) != tuple(x.shape[1:]):
        raise ValueError(f"{name} must have shape x.shape[1:] = {tuple(x.shape[1:])}, "
                         f"got {tuple(s.shape)}")


def alif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    tau_adp: float = 20.0,
    beta: float = 1.8,
    v_th: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    v_init: torch.Tensor | None = None,
    a_init: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Multi-step adaptive-threshold LIF (LSNN ALIF) over T timesteps.

    Threshold theta[t] = v_th + beta * a[t-1]; a[t] = rho a[t-1] + (1 - rho) S[t],
    rho = exp(-1 / tau_adp); membrane as stc's LIF (see ``reference.py`` for every step).

    Args:
        x: input current [T, ...], fp32 / fp16 / bf16, contiguous.
        tau: membrane time constant (timesteps, > 0). tau_adp: adaptation time constant
            (timesteps, > 0). beta: adaptation strength (>= 0; LSNN uses 1.8).
        v_th: baseline threshold. v_reset: hard-reset potential or None (soft reset,
            subtracts the current threshold theta[t]).
        decay_input, detach_reset, surrogate, alpha: as ``stc.kernels.lif.lif_multistep``.
        v_init, a_init: initial V and a, float [...] = x.shape[1:]; default v_reset (0 for
            soft) and 0.
        backend: "auto" | "triton" | "torch". The Triton path has fused forward and backward
            kernels (``triton_alif.py``); the torch path is the reference with autograd.

    Returns:
        (spikes [T, ...] in x.dtype, v_last [...] fp32, a_last [...] fp32).

    Raises:
        TypeError: x or a state not a tensor / of an unsupported dtype.
        ValueError: rank < 1, T = 0, NaN/inf, non-contiguous x, tau or tau_adp <= 0,
            beta < 0, state shape/device mismatch, unknown surrogate or backend.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: Bellec et al., NeurIPS 2018 (LSNN), eq. 2-3; Yin et al., "Accurate and efficient
    time-domain classification with adaptive spiking recurrent neural networks", Nature
    Machine Intelligence 2021 (same adaptive threshold, discrete time).
    """
    check_tensor("x", x, min_dim=1, dtypes=FLOAT_DTYPES, contiguous=True)
    check_timesteps("x", x)
    check_positive("tau", tau)
    check_positive("tau_adp", tau_adp)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a number, got {type(beta).__name__}")
    if not beta >= 0 or beta == float("inf"):
        raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
    surrogate_id(surrogate)
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_positive("alpha", alpha)
    check_state("v_init", v_init, x)
    check_state("a_init", a_init, x)
    which = resolve_backend(backend, x.device)
    if which == "torch":
        return alif_reference(x, tau, tau_adp, beta, v_th, v_reset, decay_input, detach_reset,
                              surrogate, alpha, v_init, a_init)
    from .triton_alif import alif_triton

    vr = 0.0 if v_reset is None else float(v_reset)
    v0 = (torch.full(x.shape[1:], vr, dtype=torch.float32, device=x.device) if v_init is None
          else v_init.to(torch.float32))
    a0 = (torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device) if a_init is None
          else a_init.to(torch.float32))
    rho, omr = adaptation_decay(tau_adp)
    return alif_triton(x, tau, v_th, v_reset, beta, rho, omr, decay_input, detach_reset,
                       surrogate, alpha, v0.contiguous(), a0.contiguous())
