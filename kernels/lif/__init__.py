"""Fused multi-step LIF (float): reference, Triton kernels, dispatch."""

from .op import lif_multistep
from .reference import lif_reference
from .surrogate import DEFAULT_ALPHA, SURROGATES, spike, surrogate_grad

__all__ = [
    "lif_multistep", "lif_reference", "spike", "surrogate_grad", "SURROGATES", "DEFAULT_ALPHA",
]
