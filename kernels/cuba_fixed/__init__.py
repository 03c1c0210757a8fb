"""Loihi 2 fixed-point CUBA-LIF (integer, bit-exact with Lava): reference, Triton, dispatch."""

from .op import cuba_lif_fixed
from .reference import cuba_fixed_reference, effective_bias

__all__ = ["cuba_lif_fixed", "cuba_fixed_reference", "effective_bias"]
