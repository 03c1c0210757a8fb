"""Multi-step float current-based LIF (NIR CubaLIF): reference, Triton forward, dispatch."""

from .op import cuba_lif_multistep
from .reference import cuba_lif_reference

__all__ = ["cuba_lif_multistep", "cuba_lif_reference"]
