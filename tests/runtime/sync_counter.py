"""Count the tensor operations that would make a CUDA host sync, per call site.

Used by tests/runtime/test_host_syncs.py. ``SyncCounter`` is a TorchFunctionMode: it sees
every ``Tensor.__bool__``, ``__float__``, ``__int__``, ``__index__``, ``item``, ``tolist``,
``cpu``, ``numpy``, ``.to(<cpu>)``, ``torch.equal`` / ``allclose``, data-dependent shapes
(``nonzero``, ``unique``, ``masked_select``, boolean-mask indexing) made while it is active
(shared/reference/gpu.md, "What makes a host sync"). On a CPU machine these are no syncs, but
on CUDA each one drains the stream, so the count on CPU is the count a GPU run would pay.

Each event is attributed to the innermost stack frame inside this repository (file, function);
events made by Triton's interpreter (its copies of kernel arguments to numpy, absent on a GPU)
are not counted.
"""

from __future__ import annotations

import collections
import os
import sys

import torch
from torch.overrides import TorchFunctionMode

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ALWAYS = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "cpu", "numpy",
           "equal", "allclose", "nonzero", "argwhere", "unique", "unique_consecutive",
           "masked_select", "nonzero_static"}


def _is_cpu_target(args, kwargs) -> bool:
    """``t.to(...)`` reads the device when it moves a device tensor to the host. On a CPU
    machine every tensor is on the host, so there a move counts when the code names the host
    literally (``.to("cpu")``); a ``torch.device`` object is taken as the executable's own
    target device (``Executable.run`` uploads its inputs with ``.to(self.device)``)."""
    src = args[0] if args and isinstance(args[0], torch.Tensor) else None
    for a in list(args[1:]) + [kwargs.get("device")]:
        if isinstance(a, str) and torch.device(a).type == "cpu":
            return True
        if isinstance(a, torch.device) and a.type == "cpu" and src is not None \
                and src.device.type != "cpu":
            return True
    return False


def _bool_index(args) -> bool:
    idx = args[1] if len(args) > 1 else None
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def _site() -> str | None:
    """'path:function' of the innermost repo frame, or None for Triton-interpreter events."""
    f = sys._getframe(2)
    site = None
    while f is not None:
        path = f.f_code.co_filename
        if f"{os.sep}triton{os.sep}" in path:
            return None
        if site is None and path.startswith(REPO) and f"{os.sep}.venv{os.sep}" not in path \
                and not path.endswith("sync_counter.py"):
            site = f"{os.path.relpath(path, REPO)}:{f.f_code.co_name}"
        f = f.f_back
    return site or "<outside the repository>"


class SyncCounter(TorchFunctionMode):
    """``with SyncCounter() as c: model(x)``; then ``c.total`` and ``c.sites`` (Counter of
    'path:function' -> events)."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: collections.Counter[str] = collections.Counter()
        self._read: set[int] = set()   # ids of tensors a counted read brought to the host

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        sync = (name in _ALWAYS or (name == "to" and _is_cpu_target(args, kwargs))
                or (name == "__getitem__" and _bool_index(args)))
        if name == "numpy" and args and id(args[0]) in self._read:
            sync = False                  # t.cpu().numpy(): the read was the .cpu()
        out = func(*args, **kwargs)
        if sync:
            site = _site()
            if site is not None:
                self.sites[f"{site} ({name})"] += 1
            if name in ("cpu", "to") and isinstance(out, torch.Tensor):
                self._read.add(id(out))
        return out
