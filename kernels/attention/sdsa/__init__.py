"""SDSA attention op: reference, Triton kernel, dispatch."""

from .op import sdsa
from .reference import sdsa_reference

__all__ = ["sdsa", "sdsa_reference"]
