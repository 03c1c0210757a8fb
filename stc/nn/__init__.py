"""stc.nn: spiking neurons, encoders and spike-attention modules. Inputs are [T, B, ...]."""

from .attention import SDSA, SSA, DSFormerAttention, GradedLIF
from .neurons import LIF

__all__ = ["SSA", "SDSA", "DSFormerAttention", "GradedLIF", "LIF"]
