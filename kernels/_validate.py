"""When a value check may read tensor data: never silently on a GPU's hot path.

Checks that need values (ranges, integrality) read the data back to the host; on a CUDA tensor
that is a device-to-host synchronisation per call, which stalls the pipeline and aborts CUDA
graph capture (shared/reference/gpu.md). Ops therefore take ``validate: bool | None``:

- ``None`` (default): follow ``stc.errors.scan_values`` (the one switch for the whole
  package): inside ``stc.errors.validation(True/False)`` always / never, otherwise check when
  every tensor is on the CPU (reading costs no device sync) and skip on an accelerator;
- ``True``: always check (a debug switch, or untrusted input at a boundary, once per request);
- ``False``: never check (the caller guarantees the documented ranges).
"""

from __future__ import annotations

import torch

from stc.errors import scan_values


def should_validate(validate: bool | None, *tensors: torch.Tensor | None) -> bool:
    """True when value checks should run for ``tensors`` (see the module docstring).

    Raises:
        TypeError: validate is not None or a bool.
    """
    if validate is None:
        return all(t is None or scan_values(t) for t in tensors)
    if not isinstance(validate, bool):
        raise TypeError(f"validate must be None, True or False, got {type(validate).__name__}")
    return validate
