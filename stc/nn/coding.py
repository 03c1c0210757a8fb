"""The original design's encoder words, as thin modules over ``stc.nn.encoders``, and an
adaptive-threshold encoder.

- ``RateCoding(timesteps)``: Bernoulli rate code, ``encoders.rate``.
- ``PoissonCoding(timesteps, max_rate, dt)``: Poisson code in Hz, ``encoders.poisson``.
- ``AdaptiveEncoder(encoding_type, time_steps, adaptation_rate, target_sparsity)``: an encoder
  whose threshold (or gain) adapts until the spike trains have the requested sparsity, with
  ``encode`` / ``decode`` / ``adapt``.

All take x [B, ...] and return spikes [T, B, ...] in {0, 1} (x's dtype).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stc.errors import check_choice, check_tensor

from .encoders import FLOAT_DTYPES, _check_T, poisson, rate


class RateCoding(nn.Module):
    """Rate (Bernoulli) coding over ``timesteps``: S[t] ~ Bernoulli(x), x [B, ...] in [0, 1].

    This is what SpikingJelly's ``encoding.PoissonEncoder`` computes per step (a spike when a
    uniform draw is below x), here for all T steps at once. Source: snnTorch
    ``spikegen.rate``. Raises as ``stc.nn.encoders.rate``.
    """

    def __init__(self, timesteps: int, *, clip: bool = False, seed: int | None = None) -> None:
        super().__init__()
        self.timesteps, self.clip, self.seed = _check_T(timesteps), bool(clip), seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rate(x, self.timesteps, clip=self.clip, seed=self.seed)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}"


class PoissonCoding(nn.Module):
    """Poisson coding: rate x * ``max_rate`` Hz, P(spike per step of ``dt`` s) = x max_rate dt.

    Relation to SpikingJelly: its ``encoding.PoissonEncoder`` fires with probability x per
    step, which is this encoder with ``max_rate * dt = 1`` (max_rate = 1000 Hz at the default
    dt = 1 ms), i.e. ``RateCoding``. With the default max_rate = 100 Hz an input of 1 fires on
    10% of the steps. Source: Heeger (2000), Bernoulli-per-bin approximation of a Poisson
    process. Raises ValueError if max_rate * dt > 1 (``stc.nn.encoders.poisson``).
    """

    def __init__(self, timesteps: int, max_rate: float = 100.0, dt: float = 1e-3, *,
                 seed: int | None = None) -> None:
        super().__init__()
        self.timesteps = _check_T(timesteps)
        self.max_rate, self.dt, self.seed = float(max_rate), float(dt), seed
        if self.max_rate <= 0 or self.dt <= 0 or self.max_rate * self.dt > 1:
            raise ValueError(f"PoissonCoding needs max_rate > 0, dt > 0 and max_rate * dt <= 1; "
                             f"got max_rate={max_rate}, dt={dt}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return poisson(x, self.timesteps, max_rate=self.max_rate, dt=self.dt, seed=self.seed)

    def extra_repr(self) -> str:
        return f"timesteps={self.timesteps}, max_rate={self.max_rate:g} Hz, dt={self.dt:g} s"


class AdaptiveEncoder(nn.Module):
    """An encoder whose threshold adapts to reach a target sparsity of the spike trains.

    ``encoding_type``:

    - ``"threshold"`` (default): integrate-and-fire (sigma-delta) coding with a soft reset.
      v[t] = v[t-1] + x; S[t] = v[t] >= theta; v[t] -= theta S[t], v[0] = 0, per element.
      ``decode`` returns theta * sum_t S[t] / T, which under-estimates x in [0, theta] by
      less than theta / T (v stays in [0, theta)); at most one spike per step, so inputs
      above theta saturate at theta (``adapt`` raises theta when they fire too often).
    - ``"rate"``: Bernoulli coding of clamp(gain * x, 0, 1); ``decode`` = mean_t S / gain.

    ``adapt(x)`` measures the firing rate r of ``encode(x)`` and moves the threshold
    multiplicatively toward the target rate r* = 1 - target_sparsity:
    theta <- theta * exp(adaptation_rate * (r - r*)) (gain <- gain * exp(-adaptation_rate *
    (r - r*)) for "rate"): a higher rate raises the threshold. This is the homeostatic
    adaptive threshold of Diehl & Cook (Front. Comput. Neurosci. 2015, "theta" of their
    excitatory neurons) applied to the encoder, in the multiplicative form of Bohte's
    adaptive spike coding (Bohte, NeurIPS 2012, "Efficient spike-coding with multiplicative
    adaptation in a spike response model").

    Args:
        encoding_type: "threshold" | "rate".
        time_steps: T (>= 1).
        adaptation_rate: step of the log-threshold update per ``adapt`` call (> 0).
        target_sparsity: wanted fraction of zeros in the spike trains, in [0, 1).
        threshold: initial theta ("threshold") or 1 / gain ("rate"), > 0.

    Shapes: ``encode`` x [B, ...] (float, >= 0) -> spikes [T, B, ...]; ``decode`` spikes
    [T, B, ...] -> [B, ...].

    Raises:
        ValueError / TypeError: bad arguments or input (negative x, NaN, wrong dtype).
    """

    def __init__(self, encoding_type: str = "threshold", time_steps: int = 8,
                 adaptation_rate: float = 1.0, target_sparsity: float = 0.9,
                 threshold: float = 1.0, *, seed: int | None = None) -> None:
        super().__init__()
        self.encoding_type = str(check_choice("encoding_type", encoding_type,
                                              ("threshold", "rate")))
        self.time_steps = _check_T(time_steps)
        if not (isinstance(adaptation_rate, (int, float)) and adaptation_rate > 0):
            raise ValueError(f"adaptation_rate must be > 0, got {adaptation_rate!r}")
        if not (isinstance(target_sparsity, (int, float)) and 0 <= target_sparsity < 1):
            raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity!r}")
        if not (isinstance(threshold, (int, float)) and threshold > 0):
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.adaptation_rate = float(adaptation_rate)
        self.target_sparsity = float(target_sparsity)
        self.seed = seed
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    @property
    def target_rate(self) -> float:
        """Wanted spikes per element and step: 1 - target_sparsity."""
        return 1.0 - self.target_sparsity

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, ...] (float, >= 0) -> spikes [T, B, ...] in {0, 1}, x's dtype."""
        check_tensor("x", x, dtypes=FLOAT_DTYPES)
        if x.numel() and float(x.min()) < 0:
            raise ValueError("AdaptiveEncoder encodes non-negative inputs; got a minimum of "
                             f"{float(x.min()):.4g} (shift or normalise it first)")
        theta = self.threshold.to(x.device, torch.float32)
        if self.encoding_type == "rate":
            return rate((x.float() / theta).clamp(0, 1).to(x.dtype), self.time_steps,
                        seed=self.seed)
        v = torch.zeros_like(x, dtype=torch.float32)
        out = []
        for _ in range(self.time_steps):
            v = v + x.float()
            s = (v >= theta).float()
            v = v - theta * s
            out.append(s)
        return torch.stack(out).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, spikes: torch.Tensor) -> torch.Tensor:
        """spikes [T, B, ...] -> estimate of x [B, ...] (theta * mean_t S)."""
        check_tensor("spikes", spikes, dtypes=FLOAT_DTYPES, min_dim=1)
        return spikes.float().mean(0) * self.threshold.to(spikes.device)

    @torch.no_grad()
    def adapt(self, x: torch.Tensor) -> float:
        """One homeostatic step on the batch x; returns the firing rate measured before it."""
        r = float(self.encode(x).float().mean())
        self.threshold.mul_(math.exp(self.adaptation_rate * (r - self.target_rate)))
        return r

    def extra_repr(self) -> str:
        return (f"encoding_type={self.encoding_type!r}, time_steps={self.time_steps}, "
                f"adaptation_rate={self.adaptation_rate:g}, "
                f"target_sparsity={self.target_sparsity:g}, threshold={float(self.threshold):.4g}")
