"""Launcher helpers shared by the attention kernels."""

from __future__ import annotations

import torch
import triton

from .._backend import triton_interpreted

# Largest integer magnitude that tf32 (10-bit mantissa + implicit bit) represents exactly.
TF32_EXACT = 2048


def block_dim(d: int) -> int:
    """Padded head dim for tl.dot / tl.arange: next power of two, at least 16."""
    return max(16, triton.next_power_of_2(d))


def dot_precision(*bounds: float) -> str:
    """tl.dot input precision that keeps integer operands exact.

    Operands that are integers with magnitude <= 2048 are exact in tf32; beyond that (or under
    the interpreter, which always computes IEEE fp32) "ieee" is used.
    """
    if triton_interpreted() or max(bounds) > TF32_EXACT:
        return "ieee"
    return "tf32"


def check_nonneg_integers(name: str, x: torch.Tensor) -> float:
    """Return max(x) after checking that x holds non-negative integers (ValueError if not)."""
    if bool((x < 0).any()) or not bool((x == torch.round(x)).all()):
        raise ValueError(f"{name} must hold non-negative integers (spikes or spike counts) "
                         "for the Triton kernel; use backend='torch' for other values")
    return float(x.max())
