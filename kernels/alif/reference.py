"""Pure-PyTorch multi-step adaptive LIF (ALIF): the reference the Triton kernel equals in fp32.

Adaptive threshold as in Bellec et al., "Long short-term memory and learning-to-learn in
networks of spiking neurons", NeurIPS 2018 (LSNN, eq. 2-3), with stc's LIF charge
(SpikingJelly LIFNode) for the membrane. For t = 0..T-1, V[-1] = v_init, a[-1] = a_init:

    charge    : H[t] = V[t-1] + (X[t] - (V[t-1] - v_reset)) / tau          (decay_input)
                H[t] = V[t-1] - (V[t-1] - v_reset) / tau + X[t]            (otherwise)
    threshold : theta[t] = v_th + beta * a[t-1]
    fire      : S[t] = H[t] - theta[t] >= 0
    reset     : hard V[t] = H[t] (1 - S[t]) + v_reset S[t];  soft V[t] = H[t] - theta[t] S[t]
    adapt     : a[t] = rho * a[t-1] + (1 - rho) * S[t],   rho = exp(-1 / tau_adp)

(v_reset=None is a soft reset and uses 0 in the charge.) Gradients: autograd through every
term, the spike through the surrogate; with detach_reset the reset term is detached (the
adaptation a keeps its gradient, as in LSNN's BPTT).
"""

from __future__ import annotations

import math

import torch

from ..lif.surrogate import spike


def adaptation_decay(tau_adp: float) -> tuple[float, float]:
    """(rho, 1 - rho) with rho = exp(-1 / tau_adp), tau_adp in timesteps (LSNN)."""
    rho = math.exp(-1.0 / tau_adp)
    return rho, 1.0 - rho


def alif_reference(
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ALIF over x [T, ...]; returns (spikes [T, ...] in x.dtype, V[T-1], a[T-1]) (fp32 state).

    Differentiable through autograd. Arguments are validated by ``alif_multistep``.
    """
    xs = x.to(torch.float32)
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(xs[0], vr) if v_init is None else v_init.to(torch.float32)
    a = torch.zeros_like(xs[0]) if a_init is None else a_init.to(torch.float32)
    rho, omr = adaptation_decay(tau_adp)
    out = []
    for t in range(xs.shape[0]):
        if decay_input:
            h = v + (xs[t] - (v - vr)) / tau
        else:
            h = v - (v - vr) / tau + xs[t]
        theta = v_th + beta * a
        s = spike(h - theta, surrogate, alpha)
        s_r = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - theta * s_r
        else:
            v = h * (1.0 - s_r) + v_reset * s_r
        a = rho * a + omr * s
        out.append(s)
    return torch.stack(out).to(x.dtype), v, a
