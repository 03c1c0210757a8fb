"""Launcher helpers shared by the attention kernels: strides, outputs, exact dot plans.

Layout. The kernels address q, k, v and the output through element strides of the per-head
view ``[T, B, H, N, d]`` (``head_strides``), so the token layout ``[T, B, N, H * d]`` is used
in place: ``x.view(T, B, N, H, d).permute(0, 1, 3, 2, 4)`` has strides (B N D, N D, d, D, 1)
and needs no split/merge copy. Only the channel stride must be 1. Outputs are allocated with
q's memory layout (``torch.empty_like``) and in q's dtype.

Exactness (shared/reference/gpu.md). Spikes and small integers are exact tl.dot operands:
fp16 holds every integer up to 2048, bf16 up to 256, and the products accumulate in fp32
(exact below 2**24). A dot operand that is an fp32 accumulator of integer counts (SSA's
K^T V, DSFormer's scores) is exact in fp16 up to 2048; larger counts < 2048**2 are split into
hi * 2048 + lo, two exact half-precision dots; only counts beyond that, or fp32 inputs whose
range is not declared, take an IEEE fp32 dot (``dot_plan``). No value is read from the device
to decide: the plan follows from the dtype and the declared ``max_value`` (binary spikes: 1).
"""

from __future__ import annotations

import torch
import triton

from .._backend import triton_interpreted
from .._validate import should_validate

# tl.dot operand kinds (constexpr OP of the kernels) and exact integer limits
OP_FP16, OP_BF16, OP_IEEE = 0, 1, 2
EXACT_INT = {OP_FP16: 2048, OP_BF16: 256}
# how an fp32 integer accumulator enters the second dot (constexpr ACC)
ACC_SINGLE, ACC_SPLIT, ACC_IEEE = 0, 1, 2
MAX_EXACT_SUM = 1 << 24


def block_dim(d: int) -> int:
    """Padded head dim for tl.dot / tl.arange: next power of two, at least 16."""
    return max(16, triton.next_power_of_2(d))


def as_heads(x: torch.Tensor) -> torch.Tensor:
    """``x`` [T, B, H, N, d] itself when its channel stride is 1 (any other strides are
    fine), else a contiguous copy."""
    return x if x.stride(-1) == 1 or x.shape[-1] == 1 else x.contiguous()


def head_strides(x: torch.Tensor) -> tuple[int, int, int, int]:
    """Element strides (t, b, h, n) of a [T, B, H, N, d] tensor with channel stride 1."""
    return tuple(int(s) for s in x.stride()[:4])


def empty_out(q: torch.Tensor) -> torch.Tensor:
    """Output buffer with q's shape and memory layout, in q's dtype.

    Under the interpreter bf16 is written as fp32 (its fp32 -> bf16 stores truncate where GPUs
    round to nearest) and rounded by ``finish``."""
    dtype = torch.float32 if triton_interpreted() and q.dtype == torch.bfloat16 else q.dtype
    return torch.empty_like(q, dtype=dtype)


def finish(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``out`` in ``dtype`` (a no-op unless ``empty_out`` widened a bf16 output)."""
    return out if out.dtype == dtype else out.to(dtype)


def operand_kind(dtype: torch.dtype, max_value: float | None) -> int:
    """tl.dot operand kind for inputs of ``dtype`` whose magnitudes are <= ``max_value``.

    fp16 / bf16 inputs are their own exact operands (bf16 goes through fp32 IEEE under the
    interpreter, whose bf16 arithmetic is wrong). fp32 inputs become fp16 operands when
    declared integers <= 2048 (spikes), else IEEE fp32 (a range that is not declared is not
    read from the device)."""
    if dtype == torch.float16:
        return OP_FP16
    if dtype == torch.bfloat16:
        return OP_IEEE if triton_interpreted() else OP_BF16
    if max_value is not None and max_value <= EXACT_INT[OP_FP16]:
        return OP_FP16
    return OP_IEEE


def accumulator_mode(op: int, bound: float | None) -> int:
    """How an fp32 integer accumulator with values in [-bound, bound] enters a dot with
    operands of kind ``op``: as one operand (bound <= exact limit), split hi/lo
    (bound < limit**2), or through an IEEE fp32 dot (larger or unknown bound)."""
    if op == OP_IEEE:
        return ACC_SINGLE
    if bound is None:
        return ACC_IEEE
    lim = EXACT_INT[op]
    if bound <= lim:
        return ACC_SINGLE
    if bound < lim * lim:
        return ACC_SPLIT
    return ACC_IEEE


def check_max_value(max_value: object) -> float | None:
    """Return the declared bound (a number >= 0, or None); TypeError/ValueError otherwise."""
    if max_value is None:
        return None
    if isinstance(max_value, bool) or not isinstance(max_value, (int, float)):
        raise TypeError(f"max_value must be a number or None, got {type(max_value).__name__}")
    if not 0 <= max_value < float("inf"):
        raise ValueError(f"max_value must be finite and >= 0, got {max_value}")
    return float(max_value)


def value_bound(max_value: float | None, validate: bool | None, nonneg: bool,
                **tensors: torch.Tensor) -> float | None:
    """The magnitude bound the launcher plans with, and the optional value checks.

    When ``should_validate(validate, ...)`` (CPU tensors by default, or validate=True): the
    tensors must hold integers (non-negative when ``nonneg``) within ``max_value`` if given,
    and the bound is ``max_value`` or the data's maximum. Otherwise nothing is read: the
    bound is ``max_value`` (None = unknown).

    Raises:
        ValueError: a checked tensor holds non-integers, negatives (nonneg) or values above
            max_value.
    """
    if not should_validate(validate, *tensors.values()):
        return max_value
    top = 0.0
    for name, x in tensors.items():
        xf = x.detach().float()
        if (nonneg and bool((xf < 0).any())) or not bool((xf == torch.round(xf)).all()):
            kind = "non-negative integers" if nonneg else "integers"
            raise ValueError(f"{name} must hold {kind} (spikes or spike counts) for the Triton "
                             "kernel; use backend='torch' for other values")
        m = float(xf.abs().max())
        if max_value is not None and m > max_value:
            raise ValueError(f"{name} holds values up to {m}, above the declared "
                             f"max_value = {max_value}")
        top = max(top, m)
    return max_value if max_value is not None else top
