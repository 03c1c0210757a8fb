"""Multi-step adaptive-threshold LIF (ALIF, LSNN): reference, Triton forward, dispatch."""

from .op import alif_multistep
from .reference import adaptation_decay, alif_reference

__all__ = ["alif_multistep", "alif_reference", "adaptation_decay"]
