"""Precision policy of the model GEMMs (linear and conv layers): "fp32" | "tf32" | "bf16".

- "fp32": IEEE float32 matmuls and convolutions (TF32 off on CUDA while the call runs).
- "tf32": float32 tensors, but CUDA matmuls/convolutions may round their operands to TF32
  (10 mantissa bits) on tensor cores (Ampere and later). Binary spikes and small integers
  (< 2048) are exact in TF32; the weights are rounded. On CPU this equals "fp32" (PyTorch
  has no TF32 on CPU).
- "bf16": ``torch.autocast(dtype=torch.bfloat16)``: linear/conv run in bfloat16 (8 mantissa
  bits, float32 accumulation in cuBLAS/cuDNN); neurons and attention then see bfloat16
  currents. Spikes (0/1) are exact in bfloat16. Works on CPU and CUDA.

Scope: ``gemm_precision`` is a context manager around one forward. Autocast is thread-local;
the TF32 switches (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.
allow_tf32``) are process-wide in PyTorch, so they are set for the call and restored after:
another thread's CUDA matmuls running at the same moment see the same setting.

Source: PyTorch docs, "CUDA semantics: TensorFloat-32 (TF32) on Ampere (and later) devices"
and "Automatic Mixed Precision package - torch.amp".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from stc.errors import check_choice

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: object) -> str:
    """Return ``precision`` if it is one of PRECISIONS, else raise ValueError naming it."""
    return str(check_choice("precision", precision, PRECISIONS))


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    if not torch.cuda.is_available():
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def gemm_precision(precision: str, device_type: str) -> Iterator[None]:
    """Run the block's linear/conv layers at ``precision`` on ``device_type`` ("cpu" |
    "cuda"); see the module docstring. Autocast runs with ``cache_enabled=False`` so the
    block can be captured into a CUDA graph (torch.cuda.graphs docs).

    Raises:
        ValueError: unknown precision.
    """
    check_precision(precision)
    if precision == "bf16":
        with _tf32(False), torch.autocast(device_type, dtype=torch.bfloat16,
                                          cache_enabled=False):
            yield
    else:
        with _tf32(precision == "tf32"):
            yield
