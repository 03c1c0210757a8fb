"""Spike encoders: images or features x [B, ...] -> spike trains [T, B, ...] (T timesteps first).

- ``direct``:  the analog input repeated over T (Spikformer/SDT "direct encoding"; the first
  conv + LIF layer then acts as the encoder).
- ``rate``:    Bernoulli spikes with p = x per step (snnTorch ``spikegen.rate``).
- ``poisson``: discrete-time Poisson process, rate = x * max_rate (Hz), p = rate * dt per step
  (Heeger, "Poisson model of spike generation", 2000; Gerstner et al., Neuronal Dynamics 7.2).
- ``latency``: one spike per element, brighter = earlier (time-to-first-spike), with
  snnTorch's ``spikegen.latency`` formulas (linear or RC/log code).

Random encoders draw from a ``torch.Generator``: pass ``generator=`` or ``seed=`` for
reproducible trains (same seed, same device -> same spikes).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stc.errors import check_choice, check_positive, check_tensor, scan_values

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
ENCODINGS = ("direct", "rate", "poisson", "latency")


def _check_T(T: object) -> int:
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int number of timesteps, got {type(T).__name__}")
    if T < 1:
        raise ValueError(f"T must be >= 1 timesteps, got {T}")
    return T


def _check_unit(name: str, x: torch.Tensor) -> None:
    """Range check [0, 1]: a read of x, so only where ``stc.errors.scan_values`` allows it
    (host tensors, or device tensors inside ``stc.errors.validation()``)."""
    if not x.numel() or not scan_values(x):
        return
    lo, hi = torch.stack(list(torch.aminmax(x.detach()))).tolist()   # one read
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got values in "
                         f"[{lo:.4g}, {hi:.4g}] (normalise it first)")


def _generator(x: torch.Tensor, generator: torch.Generator | None,
               seed: int | None) -> torch.Generator | None:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator(device=x.device).manual_seed(seed)


def direct(x: torch.Tensor, T: int) -> torch.Tensor:
    """Direct encoding: x [B, ...] repeated to [T, B, ...] (a contiguous copy, x's dtype).

    Raises: TypeError (x not a float tensor, T not int), ValueError (T < 1, NaN/inf in x).
    Source: Spikformer (Zhou et al., ICLR 2023) and SDT (Yao et al., NeurIPS 2023) repeat the
    image over T = 4.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    _check_T(T)
    return x.unsqueeze(0).repeat(T, *([1] * x.dim()))


def _bernoulli(p: torch.Tensor, T: int, gen: torch.Generator | None, dtype) -> torch.Tensor:
    pt = p.to(torch.float32).unsqueeze(0).expand(T, *p.shape)
    u = torch.rand(pt.shape, generator=gen, device=p.device, dtype=torch.float32)
    return (u < pt).to(dtype)


def rate(x: torch.Tensor, T: int, *, clip: bool = False, generator: torch.Generator | None = None,
         seed: int | None = None) -> torch.Tensor:
    """Rate (Bernoulli) encoding: S[t] ~ Bernoulli(p = x), independent over t and elements.

    Args:
        x: [B, ...] probabilities per timestep, float, in [0, 1] (or clipped there if
            ``clip=True``). T: timesteps (>= 1). generator / seed: randomness source.
    Returns:
        spikes [T, B, ...] in {0, 1}, x's dtype; E[S] = x, firing rate x per step.
    Raises:
        TypeError: bad types. ValueError: T < 1, x outside [0, 1] with clip=False, NaN/inf,
        both generator and seed given.
    Source: snnTorch ``spikegen.rate`` (Bernoulli trials with p = x).
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    _check_T(T)
    if clip:
        x = x.clamp(0.0, 1.0)
    else:
        _check_unit("x", x)
    return _bernoulli(x, T, _generator(x, generator, seed), x.dtype)


def poisson(x: torch.Tensor, T: int, *, max_rate: float = 100.0, dt: float = 1e-3,
            generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
    """Poisson encoding: rate r = x * max_rate (Hz); per step of dt (s) P(spike) = r * dt.

    The Bernoulli-per-bin approximation of a homogeneous Poisson process, valid for
    r * dt << 1 (Heeger 2000; Gerstner et al., Neuronal Dynamics, sec. 7.2).

    Args:
        x: [B, ...] intensities in [0, 1] (float). T: timesteps (>= 1).
        max_rate: firing rate in Hz at x = 1 (> 0). dt: timestep in seconds (> 0);
            max_rate * dt must be <= 1.
        generator / seed: randomness source.
    Returns:
        spikes [T, B, ...] in {0, 1}, x's dtype; expected count per element T * x * max_rate * dt.
    Raises:
        TypeError / ValueError as ``rate``; ValueError if max_rate * dt > 1.
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    _check_T(T)
    check_positive("max_rate", max_rate)
    check_positive("dt", dt)
    if max_rate * dt > 1.0:
        raise ValueError(f"max_rate * dt must be <= 1 (a probability per step); got "
                         f"{max_rate} Hz * {dt} s = {max_rate * dt:.4g}")
    _check_unit("x", x)
    return _bernoulli(x * (max_rate * dt), T, _generator(x, generator, seed), x.dtype)


def latency_times(x: torch.Tensor, T: int, *, tau: float = 1.0, threshold: float = 0.01,
                  linear: bool = False, normalize: bool = False) -> torch.Tensor:
    """Real-valued first-spike times [B, ...] for ``latency`` (before rounding).

    linear: t = tau * (1 - max(x, threshold)); with normalize, tau = T - 1.
    log (RC charge): an RC neuron driven by constant x reaches ``threshold`` at
        t = tau * ln(x / (x - threshold)), x clamped to >= threshold + 1e-7; with normalize
        the times are rescaled so the largest in the tensor is T - 1.
    Source: snnTorch ``spikegen.latency_code`` (linear and log codes).
    """
    if linear:
        scale = (T - 1) if normalize else tau
        return scale * (1.0 - x.clamp_min(threshold))
    xc = x.clamp_min(threshold + 1e-7)
    t = tau * torch.log(xc / (xc - threshold))
    if normalize:
        t = t * (T - 1) / t.max()
    return t


def latency(x: torch.Tensor, T: int, *, tau: float = 1.0, threshold: float = 0.01,
            linear: bool = False, normalize: bool = False, clip: bool = False) -> torch.Tensor:
    """Latency (time-to-first-spike) encoding: each element spikes once, brighter = earlier.

    The spike of an element lands at step round(t) of ``latency_times`` (round half to even,
    as torch.round); times beyond T - 1 give no spike. Elements below ``threshold`` fire at
    the latest time (or never, with ``clip=True``).

    Args:
        x: [B, ...] intensities in [0, 1], float. T: timesteps (>= 1).
        tau: time constant in timesteps (> 0); threshold: in (0, 1).
        linear: linear code instead of the RC (log) code. normalize: stretch times to [0, T-1].
        clip: drop spikes of elements below ``threshold``.
    Returns:
        spikes [T, B, ...] in {0, 1}, x's dtype, at most one spike per element.
    Raises:
        TypeError: bad types. ValueError: T < 1, x outside [0, 1], threshold outside (0, 1),
        tau <= 0, NaN/inf.
    Source: snnTorch ``spikegen.latency`` (Eshraghian et al., "Training SNNs using lessons
    from deep learning", Proc. IEEE 2023, sec. 3.1).
    """
    check_tensor("x", x, dtypes=FLOAT_DTYPES)
    _check_T(T)
    check_positive("tau", tau)
    if not 0.0 < threshold < 1.0 or math.isnan(threshold):
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    _check_unit("x", x)
    t_idx = torch.round(latency_times(x, T, tau=tau, threshold=threshold, linear=linear,
                                      normalize=normalize)).long()
    steps = torch.arange(T, device=x.device).view(T, *([1] * x.dim()))
    spikes = steps == t_idx.unsqueeze(0)
    if clip:
        spikes = spikes & (x >= threshold).unsqueeze(0)
    return spikes.to(x.dtype)


class SpikeEncoder(nn.Module):
    """Module wrapper: ``SpikeEncoder("rate", T=4)(x [B, ...]) -> [T, B, ...]``.

    ``kind`` is one of "direct" | "rate" | "poisson" | "latency"; extra keyword arguments go
    to the encoder function (e.g. max_rate, dt, linear). Random encoders draw from the global
    torch RNG state unless ``seed`` is given (then each call restarts from that seed).
    Raises ValueError for an unknown kind or T < 1.
    """

    def __init__(self, kind: str = "direct", T: int = 4, **kwargs) -> None:
        super().__init__()
        self.kind = str(check_choice("kind", kind, ENCODINGS))
        self.T = _check_T(T)
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = {"direct": direct, "rate": rate, "poisson": poisson, "latency": latency}[self.kind]
        return fn(x, self.T, **self.kwargs)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, T={self.T}"
