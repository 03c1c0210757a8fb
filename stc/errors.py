"""Typed errors and argument checks shared by every stc module.

Every check names the argument, what it got and what is expected, so bad input never surfaces
as a traceback from deep inside a kernel.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator

import torch


class StcError(Exception):
    """Base class of stc's own errors (not raised for plain argument errors)."""


class UnsupportedTargetError(StcError, ValueError):
    """A compile or run target that stc cannot honour (e.g. "loihi3")."""


class BundleError(StcError, ValueError):
    """A bundle that is malformed, tampered with, truncated or fails verification."""


class MappingError(StcError, ValueError):
    """A graph that cannot be mapped onto the requested target or resources."""


_VALIDATE: contextvars.ContextVar[bool | None] = contextvars.ContextVar("stc_validate",
                                                                       default=None)


@contextlib.contextmanager
def validation(enabled: bool = True) -> Iterator[None]:
    """Turn value checks (NaN/inf scans in ``check_tensor``) on or off inside a block.

    The hot path never reads the device: by default ``check_tensor``'s finite scan runs only
    on host (CPU) tensors, where it needs no device-to-host sync. Boundaries that take
    untrusted input (the CLI, the server, ``Executable.run(validate=True)``) wrap their one
    per-request check in ``with validation():`` so device tensors are scanned there, once,
    not in every op. ``validation(False)`` skips the scans on every device (benchmarks,
    and the host-sync test that treats CPU tensors as device tensors).

    The setting is a context variable: it holds for the current thread / asyncio task only
    and is restored on exit, so server threads do not see each other's setting.
    """
    token = _VALIDATE.set(bool(enabled))
    try:
        yield
    finally:
        _VALIDATE.reset(token)


def validation_enabled() -> bool | None:
    """True / False inside ``validation(...)``; None outside (default: scan host tensors)."""
    return _VALIDATE.get()


def _is_host(x: torch.Tensor) -> bool:
    """True when reading ``x`` needs no device-to-host sync (a CPU tensor)."""
    return x.device.type == "cpu"


def scan_values(x: torch.Tensor) -> bool:
    """Whether a value check of ``x`` (a read of its data) may run now: inside
    ``validation(True)`` always, inside ``validation(False)`` never, else only for host
    tensors (a device tensor would cost a host sync in the hot path)."""
    mode = _VALIDATE.get()
    return _is_host(x) if mode is None else mode


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ValueError if floating tensor ``x`` holds NaN or +-inf (one read of ``x``,
    unconditionally: call it at a boundary, or use ``check_tensor`` in ops)."""
    if x.is_floating_point() and x.numel() > 0 and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    return x


def check_tensor(
    name: str,
    x: object,
    *,
    min_dim: int | None = None,
    ndim: int | None = None,
    dtypes: Iterable[torch.dtype] | None = None,
    finite: bool = True,
    contiguous: bool = False,
) -> torch.Tensor:
    """Validate a tensor argument and return it.

    Args:
        name: the argument's name, used in the error message.
        x: the value to check.
        min_dim / ndim: required rank (at least / exactly).
        dtypes: allowed dtypes, or None for any.
        finite: reject NaN and +-inf (only checked for floating dtypes, and only where
            ``scan_values(x)``: host tensors by default, every tensor inside
            ``validation()``, none inside ``validation(False)``; so ops never read a
            device tensor back in the hot path).
        contiguous: require ``x.is_contiguous()``.

    Raises:
        TypeError: ``x`` is not a tensor, or has a dtype outside ``dtypes``.
        ValueError: wrong rank, non-finite values, or non-contiguous memory.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}")
    if min_dim is not None and x.dim() < min_dim:
        raise ValueError(
            f"{name} must have rank >= {min_dim} (leading dim T = timesteps), "
            f"got shape {tuple(x.shape)}"
        )
    if dtypes is not None:
        allowed = tuple(dtypes)
        if x.dtype not in allowed:
            names = ", ".join(str(d).replace("torch.", "") for d in allowed)
            got = str(x.dtype).replace("torch.", "")
            raise TypeError(f"{name} has dtype {got}; expected one of {names}")
    if contiguous and not x.is_contiguous():
        raise ValueError(f"{name} must be contiguous (call .contiguous() first)")
    if finite and x.is_floating_point() and x.numel() > 0 and scan_values(x):
        check_finite(name, x)
    return x


def check_timesteps(name: str, x: torch.Tensor) -> int:
    """Return T = x.shape[0] and raise ValueError if it is 0."""
    T = x.shape[0]
    if T < 1:
        raise ValueError(f"{name} has T = {T} timesteps along dim 0; expected T >= 1")
    return T


def check_same_device(**tensors: torch.Tensor | None) -> torch.device:
    """Raise ValueError naming the arguments when tensors sit on different devices."""
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        where = ", ".join(f"{k} on {v.device}" for k, v in present.items())
        raise ValueError(f"tensors must be on one device; got {where}")
    return next(iter(devices))


def check_positive(name: str, value: float, *, allow_inf: bool = False) -> float:
    """Raise ValueError unless ``value`` is a finite (or inf, if allowed) number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if math.isnan(value) or value <= 0 or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be > 0{'' if allow_inf else ' and finite'}, got {value}")
    return float(value)


def check_choice(name: str, value: object, choices: Iterable[object]) -> object:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
