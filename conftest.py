"""Root pytest configuration.

Without CUDA, Triton kernels run on the CPU under Triton's interpreter. TRITON_INTERPRET is read
when a ``@triton.jit`` decorator runs, so it is set here, before any test imports stc.kernels
(shared/reference/triton.md).
"""

import os


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing is reported by the tests themselves
        return False


if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
