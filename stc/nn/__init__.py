"""stc.nn: spiking neurons, encoders and spike-attention modules. Inputs are [T, B, ...]."""

from .attention import SDSA, SSA, DSFormerAttention, GradedLIF
from .coding import AdaptiveEncoder, PoissonCoding, RateCoding
from .container import MultiStepSequential, SeqToANNContainer
from .encoders import SpikeEncoder, direct, latency, poisson, rate
from .neurons import ALIF, IF, LIF, CubaLIF, LoihiCubaLIF

AdLifNeuron = ALIF  # the original design's name for the adaptive LIF (stc.nn.ALIF)

__all__ = ["SSA", "SDSA", "DSFormerAttention", "GradedLIF", "LIF", "IF", "ALIF", "CubaLIF",
           "LoihiCubaLIF", "SpikeEncoder", "direct", "rate", "poisson", "latency",
           "AdLifNeuron", "AdaptiveEncoder", "PoissonCoding", "RateCoding",
           "MultiStepSequential", "SeqToANNContainer"]
