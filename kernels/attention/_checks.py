"""Argument checks shared by the attention ops (q, k, v: per-head spikes [T, B, H, N, d])."""

from __future__ import annotations

import math

import torch

from stc.errors import check_same_device, check_tensor

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_qkv(q: object, k: object, v: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate q, k, v as float tensors of one shape ``[T, B, H, N, d]`` on one device.

    Raises:
        TypeError: not tensors, or not fp32/fp16/bf16.
        ValueError: rank != 5, an empty dimension, NaN/inf, shapes or devices that differ.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        check_tensor(name, x, ndim=5, dtypes=FLOAT_DTYPES)
        if x.numel() == 0:
            raise ValueError(f"{name} has an empty dimension, shape {tuple(x.shape)}; "
                             "expected [T, B, H, N, d] with every size >= 1")
    if not (q.shape == k.shape == v.shape):
        raise ValueError("q, k, v must share one shape [T, B, H, N, d]; got "
                         f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    check_same_device(q=q, k=k, v=v)
    return q, k, v


def check_number(name: str, value: object) -> float:
    """Return ``value`` as a finite float; TypeError/ValueError name the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_window_size(window_size: object) -> int:
    """Return ``window_size`` (int >= 1, timesteps per window) or raise naming the value."""
    if isinstance(window_size, bool) or not isinstance(window_size, int):
        raise TypeError(f"window_size must be an int (timesteps), got {type(window_size).__name__}")
    if window_size < 1:
        raise ValueError(f"window_size must be >= 1 timestep, got {window_size}")
    return window_size


def check_sparse_ratio(sparse_ratio: object) -> float:
    """Return ``sparse_ratio`` as a float in (0, 1] or raise naming the value."""
    ratio = check_number("sparse_ratio", sparse_ratio)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"sparse_ratio must be in (0, 1] (fraction of keys kept), got {ratio}")
    return ratio
