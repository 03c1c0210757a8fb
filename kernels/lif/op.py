"""Public multi-step LIF op: validation, then dispatch to the Triton kernel or the reference."""

from __future__ import annotations

import math

import torch

from stc.errors import check_positive, check_same_device, check_tensor, check_timesteps

from .._backend import resolve_backend
from .reference import lif_reference
from .surrogate import DEFAULT_ALPHA, surrogate_id

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SPIKE_DTYPES = (None, torch.float32, torch.float16, torch.bfloat16, torch.uint8)


def lif_multistep(
    x: torch.Tensor,
    tau: float = 2.0,
    v_th: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    v_init: torch.Tensor | None = None,
    spike_dtype: torch.dtype | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step leaky integrate-and-fire over T timesteps (SpikingJelly LIFNode semantics).

    Args:
        x: input current X, shape [T, ...] (T timesteps first), fp32 / fp16 / bf16.
        tau: membrane time constant in timesteps (> 0); float('inf') with decay_input=False
            gives an IF neuron (H = V + X exactly).
        v_th: firing threshold v_th.
        v_reset: hard-reset potential, or None for soft reset (subtract v_th).
        decay_input: if True the input is divided by tau (H = V + (X - (V - v_reset)) / tau).
        detach_reset: drop the reset path from the backward pass.
        surrogate: "sigmoid" | "atan" | "fast_sigmoid"; alpha its sharpness (default per kind).
        v_init: initial membrane potential [...] (x.shape[1:]); default v_reset (0 for soft).
        spike_dtype: dtype of the returned spikes; default x.dtype; torch.uint8 allowed
            (inference only: uint8 spikes carry no gradient).
        backend: "auto" | "triton" | "torch".

    Returns:
        (spikes [T, ...], v_last [...]): spikes in {0, 1}; v_last is V[T-1] in fp32 (or in
        x.dtype for fp32 input).

    Raises:
        TypeError: x not a tensor or of an unsupported dtype; bad spike_dtype.
        ValueError: rank < 1, T = 0, NaN/inf in x or v_init, non-contiguous x, tau <= 0 or
            NaN, tau = inf with decay_input=True, v_init shape or device mismatch, unknown
            surrogate or backend.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: SpikingJelly activation_based/neuron.py (LIFNode); Fang et al., "Incorporating
    learnable membrane time constant", ICCV 2021, eq. 1-3.
    """
    check_tensor("x", x, min_dim=1, dtypes=FLOAT_DTYPES, contiguous=True)
    check_timesteps("x", x)
    check_positive("tau", tau, allow_inf=True)
    if math.isinf(tau) and decay_input:
        raise ValueError(
            "tau = inf is only allowed with decay_input=False (an IF neuron, H = V + X); "
            "got decay_input=True"
        )
    surrogate_id(surrogate)
    alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_positive("alpha", alpha)
    if spike_dtype not in SPIKE_DTYPES:
        raise TypeError(
            f"spike_dtype must be None, a float dtype or torch.uint8; got {spike_dtype}"
        )
    if v_init is not None:
        check_tensor("v_init", v_init, dtypes=FLOAT_DTYPES, finite=False)
        check_same_device(x=x, v_init=v_init)
        if tuple(v_init.shape) != tuple(x.shape[1:]):
            raise ValueError(
                f"v_init must have shape x.shape[1:] = {tuple(x.shape[1:])}, "
                f"got {tuple(v_init.shape)}"
            )
        check_tensor("v_init", v_init, finite=True)
    which = resolve_backend(backend, x.device)
    if which == "triton":
        from .triton_lif import lif_triton

        spikes, v = lif_triton(x, float(tau), float(v_th), v_reset, decay_input, detach_reset,
                               surrogate, float(alpha), v_init, spike_dtype)
    else:
        spikes, v = lif_reference(x, tau, v_th, v_reset, decay_input, detach_reset, surrogate,
                                  alpha, v_init)
        if spike_dtype is not None:
            spikes = spikes.to(spike_dtype)
    return spikes, v
