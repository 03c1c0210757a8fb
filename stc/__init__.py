"""stc, the Spike-Transformer-Compiler.

Fused Triton kernels for spiking neural networks and spiking transformers (stc.kernels, stc.nn,
stc.models), a compiler from models to verified bundles with a Loihi 2 mapping (stc.ir,
stc.passes, stc.bundle, stc.lava), runtimes (stc.runtime) and an Open Inference Protocol v2
gRPC server (stc.server). See DESIGN.md for the data flow.

Subpackages are imported on demand, so ``import stc`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "SpikeCompiler", "create_model"]

_LAZY = {"SpikeCompiler": "stc.compiler", "create_model": "stc.models"}


def __getattr__(name: str):
    """``stc.SpikeCompiler`` and ``stc.create_model`` (imported on first use)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stc' has no attribute {name!r}")
