"""Pure-PyTorch multi-step LIF: the reference the Triton kernel must equal exactly in fp32.

Dynamics are SpikingJelly's LIFNode (activation_based/neuron.py), which every official spiking
transformer uses (shared/reference/attention.md). For t = 0..T-1, with V[-1] = v_init:

    charge, decay_input=True : H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau
    charge, decay_input=False: H[t] = V[t-1] - (V[t-1] - v_reset) / tau + X[t]
    (soft reset, v_reset=None, uses 0 in place of v_reset in the charge)
    fire                     : S[t] = H[t] >= v_th
    hard reset               : V[t] = H[t] * (1 - S[t]) + v_reset * S[t]
    soft reset               : V[t] = H[t] - v_th * S[t]

With detach_reset=True the reset term does not propagate gradient (S is detached inside the
reset), as in SpikingJelly. Gradients of S use a surrogate (surrogate.py).
"""

from __future__ import annotations

import torch

from .surrogate import spike


def lif_reference(
    x: torch.Tensor,
    tau: float = 2.0,
    v_th: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = True,
    surrogate: str = "sigmoid",
    alpha: float | None = None,
    v_init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-step LIF over x [T, ...]; returns (spikes [T, ...] in x.dtype, V[T-1] [...]).

    Differentiable through autograd (surrogate gradient for the spike). Arithmetic runs in
    fp32 for fp16/bf16 inputs (the kernel does the same) and spikes are cast back.
    """
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xs = x.to(compute)
    v = torch.zeros_like(xs[0]) if v_init is None else v_init.to(compute)
    if v_reset is not None and v_init is None:
        v = v + v_reset
    vr = 0.0 if v_reset is None else v_reset
    out = []
    for t in range(xs.shape[0]):
        if decay_input:
            h = v + (xs[t] - (v - vr)) / tau
        else:
            h = v - (v - vr) / tau + xs[t]
        s = spike(h - v_th, surrogate, alpha)
        s_r = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - v_th * s_r
        else:
            v = h * (1.0 - s_r) + v_reset * s_r
        out.append(s)
    return torch.stack(out).to(x.dtype), v
