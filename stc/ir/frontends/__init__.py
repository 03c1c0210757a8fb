"""Frontends into the IR: ``from_torch`` (module walk) and ``from_nir`` (nir.read)."""

from .nir import from_nir, load_nir
from .torch import from_torch

__all__ = ["from_nir", "from_torch", "load_nir"]
