"""Pure-PyTorch multi-step current-based LIF (float CUBA-LIF): the reference of the kernel.

NIR's CubaLIF (Pedersen et al., "Neuromorphic intermediate representation", Nat. Commun.
2024) with w_in = 1 and r = 1,

    tau_syn dI/dt = -I + x,      tau_mem dV/dt = (v_leak - V) + I,      spike when V > v_th,

discretised with dt = 1 timestep, updating I first and feeding the new I to V (semi-implicit
Euler, the order of Loihi/Lava's CUBA neuron and of Norse's LIF box). For t = 0..T-1,
I[-1] = i_init, V[-1] = v_init:

    current : I[t] = I[t-1] + (X[t] - I[t-1]) / tau_syn
    charge  : H[t] = V[t-1] + ((v_leak - V[t-1]) + I[t]) / tau_mem
    fire    : S[t] = H[t] - v_th >= 0          (stc's LIF convention; a tie has measure 0)
    reset   : hard V[t] = H[t] (1 - S[t]) + v_reset S[t];  soft V[t] = H[t] - v_th S[t]

Gradients: autograd through I and V, surrogate for S, reset detached with detach_reset.
"""

from __future__ import annotations

import torch

from ..lif.surrogate import spike


def cuba_lif_reference(
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CUBA-LIF over x [T, ...]; returns (spikes [T, ...] in x.dtype, I[T-1], V[T-1]) (fp32).

    Differentiable through autograd. Arguments are validated by ``cuba_lif_multistep``.
    """
    xs = x.to(torch.float32)
    i = torch.zeros_like(xs[0]) if i_init is None else i_init.to(torch.float32)
    v0 = 0.0 if v_reset is None else v_reset
    v = torch.full_like(xs[0], v0) if v_init is None else v_init.to(torch.float32)
    out = []
    for t in range(xs.shape[0]):
        i = i + (xs[t] - i) / tau_syn
        h = v + ((v_leak - v) + i) / tau_mem
        s = spike(h - v_th, surrogate, alpha)
        s_r = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - v_th * s_r
        else:
            v = h * (1.0 - s_r) + v_reset * s_r
        out.append(s)
    return torch.stack(out).to(x.dtype), i, v
