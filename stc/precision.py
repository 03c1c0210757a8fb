"""Precision policy of the model GEMMs (linear and conv layers): "fp32" | "tf32" | "bf16".

- "fp32": IEEE float32 matmuls and convolutions (TF32 off on CUDA while the call runs).
- "tf32": float32 tensors, but CUDA matmuls/convolutions may round their operands to TF32
  (10 mantissa bits) on tensor cores (Ampere and later). Binary spikes and small integers
  (< 2048) are exact in TF32; the weights are rounded. On CPU this equals "fp32" (PyTorch
  has no TF32 on CPU).
- "bf16": linear/conv take bfloat16 operands (8 mantissa bits; float32 accumulation in
  cuBLAS/cuDNN) and return float32: spikes (0/1) are exact in bfloat16, the weights and the
  real-valued image are rounded. BatchNorm, the neurons' membrane and attention stay float32.
  (``torch.autocast`` would also round the currents and the membrane state to bfloat16,
  where a threshold crossing is a hard decision, so stc does not use it.) CPU and CUDA.

Scope: ``gemm_precision`` is a context manager around one forward. The bf16 mode is
thread-local (a TorchFunctionMode); the TF32 switches
(``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``) are
process-wide in PyTorch, so they are set for the call and restored after:
another thread's CUDA matmuls running at the same moment see the same setting.

Source: PyTorch docs, "CUDA semantics: TensorFloat-32 (TF32) on Ampere (and later) devices"
and "torch.overrides.TorchFunctionMode".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

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


_GEMMS = {F.linear, F.conv1d, F.conv2d}


class _Bf16Gemms(TorchFunctionMode):
    """Linear and convolution in bfloat16 operands, float32 result: each call casts its
    floating operands to bf16, runs the op (fp32 accumulation in cuBLAS/cuDNN/oneDNN) and
    returns ``result.to(input dtype)``. Every other op runs unchanged, so BatchNorm, the
    neurons' membrane and the attention ops stay in the input's precision."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _GEMMS and args and isinstance(args[0], torch.Tensor) \
                and args[0].dtype == torch.float32:
            cast = [a.to(torch.bfloat16) if isinstance(a, torch.Tensor)
                    and a.is_floating_point() else a for a in args]
            kw = {k: v.to(torch.bfloat16) if isinstance(v, torch.Tensor)
                  and v.is_floating_point() else v for k, v in kwargs.items()}
            return func(*cast, **kw).to(torch.float32)
        return func(*args, **kwargs)


@contextlib.contextmanager
def gemm_precision(precision: str, device_type: str) -> Iterator[None]:
    """Run the block's linear/conv layers at ``precision`` on ``device_type`` ("cpu" |
    "cuda"); see the module docstring. Nothing here reads the device, so the block can be
    captured into a CUDA graph. The bf16 mode is a thread-local TorchFunctionMode.

    Raises:
        ValueError: unknown precision or device type.
    """
    check_precision(precision)
    check_choice("device_type", device_type, ("cpu", "cuda"))
    if precision == "bf16":
        with _tf32(False), _Bf16Gemms():
            yield
    else:
        with _tf32(precision == "tf32"):
            yield
