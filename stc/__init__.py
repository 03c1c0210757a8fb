"""stc, the Spike-Transformer-Compiler.

Fused Triton kernels for spiking neural networks and spiking transformers (stc.kernels, stc.nn,
stc.models), a compiler from models to verified bundles with a Loihi 2 mapping (stc.ir,
stc.passes, stc.bundle, stc.lava), runtimes (stc.runtime) and an Open Inference Protocol v2
gRPC server (stc.server). See DESIGN.md for the data flow.

Subpackages are imported on demand, so ``import stc`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
