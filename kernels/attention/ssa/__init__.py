"""SSA attention op: reference, Triton kernel, dispatch."""

from .op import ssa
from .reference import ssa_reference

__all__ = ["ssa", "ssa_reference"]
