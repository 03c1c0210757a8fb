"""stc.nn: spiking neurons, encoders and spike-attention modules. Inputs are [T, B, ...]."""

from .neurons import LIF

__all__ = ["LIF"]
