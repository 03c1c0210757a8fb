"""The executable protocol the server runs: any object shaped like ``stc.runtime``'s Executable.

Contract (CONTRIBUTING.md, "Runtime"): ``name``, ``version``, ``inputs`` / ``outputs`` (lists of
tensor specs with ``name``, OIP ``datatype`` string and ``shape`` where -1 marks the batch
dimension), ``infer(dict[str, np.ndarray]) -> dict[str, np.ndarray]`` on batch-first arrays,
and ``close()``.

Optional spike statistics, read after every ``infer`` and exported as ``stc_spikes_total`` and
``stc_spikes_per_second`` (stc.server.metrics): ``last_spike_count`` (int, spikes emitted by
the last call over all layers, timesteps and samples) or, as stc.runtime's Executable provides,
``last_result.spike_counts`` (dict layer -> spikes of the last call), summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TensorSpecLike(Protocol):
    """A tensor signature: ``name``, OIP ``datatype`` (e.g. "FP32") and ``shape`` (-1 = any)."""

    name: str
    datatype: str
    shape: Sequence[int]


@runtime_checkable
class Executable(Protocol):
    """A loaded model the server can run (``stc.runtime.load_bundle`` returns one).

    ``infer`` takes and returns batch-first arrays keyed by tensor name, e.g. ``x: [B, ...]``;
    it is called from one worker thread per model version at a time.
    """

    name: str
    version: str
    inputs: Sequence[TensorSpecLike]
    outputs: Sequence[TensorSpecLike]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def check_executable(obj: object) -> Executable:
    """Return ``obj`` if it satisfies the Executable protocol.

    Raises:
        TypeError: a required attribute or method is missing, naming it.
    """
    for attr in ("name", "version", "inputs", "outputs", "infer", "close"):
        if not hasattr(obj, attr):
            raise TypeError(
                f"executable {type(obj).__name__} lacks {attr!r}; expected the stc.runtime "
                "Executable protocol (name, version, inputs, outputs, infer, close)"
            )
    for spec in [*obj.inputs, *obj.outputs]:  # type: ignore[attr-defined]
        if not isinstance(spec, TensorSpecLike):
            raise TypeError(f"tensor spec {spec!r} needs name, datatype and shape attributes")
    return obj  # type: ignore[return-value]


def batchable(exe: Executable) -> bool:
    """True if every input and output has -1 (any batch) as its first dimension."""
    specs = [*exe.inputs, *exe.outputs]
    return bool(specs) and all(len(s.shape) > 0 and int(s.shape[0]) == -1 for s in specs)


def spike_count(exe: object) -> int | None:
    """Spikes of the executable's last ``infer`` call, or None if it reports none (see above)."""
    count = getattr(exe, "last_spike_count", None)
    if count is not None:
        return int(count)
    counts = getattr(getattr(exe, "last_result", None), "spike_counts", None)
    if isinstance(counts, dict) and counts:
        return int(sum(int(v) for v in counts.values()))
    return None
