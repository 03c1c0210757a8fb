"""stc.compiler: SpikeCompiler(target, optimization_level, time_steps).compile(model, shape)
-> CompiledModel (run, save); OptimizationPass and create_optimizer()."""

from .allocator import ResourceAllocator
from .api import CompiledModel, OptimizationPass, Optimizer, SpikeCompiler

__all__ = ["CompiledModel", "OptimizationPass", "Optimizer", "ResourceAllocator",
           "SpikeCompiler"]
