"""Multi-step spiking neurons as torch modules. Inputs are [T, ...] with T timesteps first."""

from __future__ import annotations

import math

import torch
from torch import nn

from stc.errors import check_choice, check_positive
from stc.kernels.lif import DEFAULT_ALPHA, SURROGATES, lif_multistep


class LIF(nn.Module):
    """Multi-step leaky integrate-and-fire neuron (SpikingJelly MultiStepLIFNode semantics).

    Forward: x [T, ...] (input current, fp32/fp16/bf16) -> spikes [T, ...] in x.dtype.
    Stateless: every call starts from V = v_reset (0 for soft reset); the membrane potential
    after the last step is kept in ``self.v_last`` when ``store_v=True``.

    Args:
        tau: membrane time constant (timesteps, > 0). Official spiking transformers: 2.0.
            float('inf') with decay_input=False is an IF neuron (H = V + X).
        v_th: threshold (1.0; 0.5 after attention products in Spikformer/SDT).
        v_reset: hard-reset potential, or None for soft reset.
        decay_input, detach_reset: as SpikingJelly's LIFNode.
        surrogate: "sigmoid" | "atan" | "fast_sigmoid"; alpha: its sharpness.
        backend: "auto" | "triton" | "torch".

    Raises:
        ValueError / TypeError on bad parameters (at construction) or bad input (at call),
        see ``stc.kernels.lif.lif_multistep``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_th: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        backend: str = "auto",
        store_v: bool = False,
    ) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau, allow_inf=True)
        if math.isinf(self.tau) and decay_input:
            raise ValueError(
                "tau = inf is only allowed with decay_input=False (an IF neuron, H = V + X); "
                "got decay_input=True"
            )
        self.v_th = float(v_th)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.decay_input = bool(decay_input)
        self.detach_reset = bool(detach_reset)
        self.surrogate = str(check_choice("surrogate", surrogate, SURROGATES))
        self.alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_positive("alpha", alpha)
        self.backend = str(check_choice("backend", backend, ("auto", "triton", "torch")))
        self.store_v = store_v
        self.v_last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, v = lif_multistep(
            x.contiguous() if isinstance(x, torch.Tensor) else x,
            tau=self.tau, v_th=self.v_th, v_reset=self.v_reset, decay_input=self.decay_input,
            detach_reset=self.detach_reset, surrogate=self.surrogate, alpha=self.alpha,
            backend=self.backend,
        )
        if self.store_v:
            self.v_last = v.detach()
        return spikes

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, v_th={self.v_th}, v_reset={self.v_reset}, "
                f"decay_input={self.decay_input}, detach_reset={self.detach_reset}, "
                f"surrogate={self.surrogate!r}, backend={self.backend!r}")
