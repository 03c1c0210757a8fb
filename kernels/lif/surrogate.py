"""Surrogate gradients for the Heaviside spike function, S = H(h - v_th).

The forward pass is always the exact step; only the backward pass uses the surrogate
derivative sg'(x), x = h - v_th. Parameterisations follow SpikingJelly
(activation_based/surrogate.py) and snnTorch (surrogate.py):

- "sigmoid" (SpikingJelly Sigmoid, alpha = 4):   sg'(x) = alpha * s * (1 - s), s = sigmoid(alpha x)
- "atan"    (SpikingJelly ATan, alpha = 2):      sg'(x) = alpha / 2 / (1 + (pi / 2 * alpha * x)^2)
- "fast_sigmoid" (snnTorch fast_sigmoid, slope k = 25; Zenke & Ganguli 2018, SuperSpike):
                                                 sg'(x) = 1 / (k * |x| + 1)^2

The same formulas are written in Triton in ``triton_lif.py``; ids below are shared with it.
"""

from __future__ import annotations

import math

import torch

SURROGATES = {"sigmoid": 0, "atan": 1, "fast_sigmoid": 2}
DEFAULT_ALPHA = {"sigmoid": 4.0, "atan": 2.0, "fast_sigmoid": 25.0}


def surrogate_id(name: str) -> int:
    """Return the integer id of a surrogate name; ValueError names the valid ones."""
    try:
        return SURROGATES[name]
    except KeyError:
        raise ValueError(
            f"surrogate must be one of {', '.join(map(repr, SURROGATES))}; got {name!r}"
        ) from None


def surrogate_grad(x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
    """sg'(x) for x = h - v_th, elementwise, same shape and dtype as ``x``."""
    surrogate_id(name)
    if name == "sigmoid":
        s = torch.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    if name == "atan":
        return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)
    return 1.0 / (alpha * x.abs() + 1.0) ** 2


class SpikeFn(torch.autograd.Function):
    """Heaviside forward (x >= 0 -> 1) with a surrogate derivative backward.

    Shapes: x any shape; returns spikes of x's shape and dtype.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.alpha = name, alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad(x, ctx.name, ctx.alpha), None, None


def spike(x: torch.Tensor, name: str = "sigmoid", alpha: float | None = None) -> torch.Tensor:
    """Heaviside spike of ``x`` (>= 0 fires) with the named surrogate gradient."""
    surrogate_id(name)
    return SpikeFn.apply(x, name, DEFAULT_ALPHA[name] if alpha is None else float(alpha))
