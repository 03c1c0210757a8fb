"""stc.ir: the typed graph IR (nodes, shapes, JSON round trip, verification) and frontends
(stc.ir.frontends.torch, stc.ir.frontends.nir)."""

from .graph import IR_VERSION, Graph, GraphError
from .nodes import (
    IF,
    LIF,
    NODE_TYPES,
    Add,
    AttentionCore,
    BatchNorm,
    Concat,
    Conv1d,
    Conv2d,
    CubaLIF,
    Delay,
    Flatten,
    Input,
    Linear,
    LoihiCubaLIF,
    Node,
    Output,
    Pool2d,
    Repeat,
    Scale,
    SpikeAttention,
    TimeMean,
    TokenMean,
    ToTokens,
)

__all__ = [
    "IF", "IR_VERSION", "LIF", "NODE_TYPES", "Add", "AttentionCore", "BatchNorm", "Concat",
    "Conv1d", "Conv2d", "Delay",
    "CubaLIF", "Flatten", "Graph", "GraphError", "Input", "Linear", "LoihiCubaLIF", "Node",
    "Output", "Pool2d",
    "Repeat", "Scale", "SpikeAttention", "TimeMean", "ToTokens", "TokenMean",
]
