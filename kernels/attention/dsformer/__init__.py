"""DSFORMER attention op: reference, Triton kernel, dispatch."""

from .op import dsformer
from .reference import dsformer_reference, topk_count, window_bounds

__all__ = ["dsformer", "dsformer_reference", "topk_count", "window_bounds"]
