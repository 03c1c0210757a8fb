"""Backend selection shared by every op: ``"auto" | "triton" | "torch"``.

"auto" picks Triton when it can run on the tensor's device (CUDA, or any device under
TRITON_INTERPRET=1) and the pure-PyTorch reference otherwise.
"""

from __future__ import annotations

import functools
import os

import torch

from stc.errors import check_choice

BACKENDS = ("auto", "triton", "torch")


def triton_interpreted() -> bool:
    """True when Triton kernels run under the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package imports."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """Return "triton" or "torch" for ``backend`` on ``device``.

    Raises:
        ValueError: unknown backend name.
        RuntimeError: "triton" was requested where it cannot run (no triton package, or a CPU
            tensor without TRITON_INTERPRET=1).
    """
    check_choice("backend", backend, BACKENDS)
    # the device test first: importing triton costs ~0.3 s and is useless where it cannot run
    can_run = (device.type == "cuda" or triton_interpreted()) and triton_available()
    if backend == "auto":
        return "triton" if can_run else "torch"
    if backend == "triton" and not can_run:
        why = "the triton package is not installed" if not triton_available() else (
            f"tensors are on {device} and TRITON_INTERPRET is not set")
        raise RuntimeError(f"backend='triton' cannot run: {why}; use backend='torch' or 'auto'")
    return backend
