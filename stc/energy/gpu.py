"""GPU energy MEASUREMENT per inference with the GPU's energy counter.

Protocol (reference/energy.md; Yang et al., SC24: use the energy counter, not power samples):
  1. idle power: read the counter over a quiet window of ``idle_s`` seconds -> P_idle (W);
  2. warm up: ``warmup`` calls of the workload, then synchronize;
  3. measure: run the workload back to back until at least ``min_seconds`` have passed
     (NVML's counter updates every 20-100 ms, so the window must span many updates),
     synchronize, and divide the counter difference by the number of inferences:
         total  = dE / N                         (mJ per inference)
         dynamic = (dE - P_idle * dt) / N         (mJ per inference)
  4. repeat ``repeats`` times; report mean and standard deviation.

Meters: Zeus's ``ZeusMonitor`` (begin_window / end_window, synchronizes itself) when the ``zeus``
package is installed, else NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load,
Volta and newer) through ``nvidia-ml-py`` (module ``pynvml``). Both are imported lazily; asking
for a measurement without them, or without a CUDA GPU, raises :class:`GpuEnergyUnavailable`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from stc.errors import StcError, check_positive

NVML_SOURCE = "NVML nvmlDeviceGetTotalEnergyConsumption (mJ counter, nvidia-ml-py)"
ZEUS_SOURCE = "Zeus ZeusMonitor begin_window/end_window (energy counter)"


class GpuEnergyUnavailable(StcError, RuntimeError):
    """GPU energy cannot be measured here: no CUDA GPU, or neither zeus nor nvidia-ml-py."""


class EnergyMeter(Protocol):
    """A window meter: ``begin()``, then ``end() -> (seconds, millijoules)`` since begin."""

    source: str

    def begin(self) -> None: ...

    def end(self) -> tuple[float, float]: ...


class CounterMeter:
    """Window meter over a cumulative energy counter (mJ) and a clock (s).

    Args:
        read_mj: returns the counter in mJ (monotonic, e.g. NVML's total energy).
        clock: returns seconds (default ``time.perf_counter``).
        source: description of the counter, copied into results.
    """

    def __init__(self, read_mj: Callable[[], float], clock: Callable[[], float] = time.perf_counter,
                 source: str = "energy counter") -> None:
        if not callable(read_mj) or not callable(clock):
            raise TypeError("read_mj and clock must be callables returning numbers")
        self._read, self._clock, self.source = read_mj, clock, source
        self._e0 = self._t0 = None

    def begin(self) -> None:
        """Start a window."""
        self._t0, self._e0 = self._clock(), float(self._read())

    def end(self) -> tuple[float, float]:
        """Close the window: (elapsed seconds, energy in mJ)."""
        if self._e0 is None:
            raise RuntimeError("CounterMeter.end() called before begin()")
        e1, t1 = float(self._read()), self._clock()
        de, dt = e1 - self._e0, t1 - self._t0
        self._e0 = self._t0 = None
        if de < 0:
            raise RuntimeError(f"energy counter went backwards by {-de} mJ (driver reloaded?)")
        return dt, de


def _require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise GpuEnergyUnavailable(
            "GPU energy measurement needs a CUDA GPU; torch.cuda.is_available() is False"
        )


def nvml_meter(device_index: int = 0) -> CounterMeter:
    """Meter on NVML's total-energy counter of GPU ``device_index`` (needs nvidia-ml-py).

    Raises:
        GpuEnergyUnavailable: the ``nvidia-ml-py`` package (module ``pynvml``) is missing, or
            NVML cannot read the counter (pre-Volta GPU, no driver).
    """
    try:
        import pynvml
    except ImportError as e:
        raise GpuEnergyUnavailable(
            "GPU energy measurement needs the 'nvidia-ml-py' package (import pynvml) or "
            "'zeus'; neither is installed (pip install 'stc[energy]')"
        ) from e
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as e:  # pynvml raises NVMLError subclasses
        raise GpuEnergyUnavailable(f"NVML cannot read the energy counter of GPU "
                                   f"{device_index}: {e}") from e
    return CounterMeter(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle),
                        source=NVML_SOURCE)


class ZeusMeter:
    """Meter on Zeus's ``ZeusMonitor`` for GPU ``device_index`` (needs the ``zeus`` package)."""

    source = ZEUS_SOURCE

    def __init__(self, device_index: int = 0) -> None:
        try:
            from zeus.monitor import ZeusMonitor
        except ImportError as e:
            raise GpuEnergyUnavailable("the 'zeus' package is not installed") from e
        self._index = device_index
        self._monitor = ZeusMonitor(gpu_indices=[device_index])

    def begin(self) -> None:
        """Start a Zeus window (Zeus synchronizes the GPU)."""
        self._monitor.begin_window("stc")

    def end(self) -> tuple[float, float]:
        """(seconds, mJ) of the window; Zeus reports J."""
        m = self._monitor.end_window("stc")
        return float(m.time), float(m.gpu_energy[self._index]) * 1e3


def default_meter(device_index: int = 0) -> EnergyMeter:
    """ZeusMeter if ``zeus`` is installed, else the NVML counter; checks that CUDA is present.

    Raises:
        GpuEnergyUnavailable: no CUDA GPU, or neither ``zeus`` nor ``nvidia-ml-py`` installed.
    """
    _require_cuda()
    try:
        return ZeusMeter(device_index)
    except GpuEnergyUnavailable:
        return nvml_meter(device_index)


@dataclass(frozen=True)
class GpuEnergy:
    """Measured GPU energy per inference (one sample), over ``repeats`` windows.

    Attributes:
        total_mj / total_mj_std: counter difference / inferences, mean and std (mJ).
        dynamic_mj / dynamic_mj_std: same with idle power x window time subtracted (mJ).
        idle_power_w: idle power measured over the quiet window (W).
        inferences: inferences (samples) per window; seconds: window lengths (s).
        kind: always "measurement"; source: the meter.
    """

    total_mj: float
    total_mj_std: float
    dynamic_mj: float
    dynamic_mj_std: float
    idle_power_w: float
    inferences: list[int]
    seconds: list[float]
    source: str
    device: str = ""
    kind: str = "measurement"
    windows_mj: list[float] = field(default_factory=list)

    @property
    def total_pj(self) -> float:
        """Total energy per inference in pJ."""
        return self.total_mj * 1e9

    def to_dict(self) -> dict:
        """JSON-serialisable view (units in the key names)."""
        return dict(vars(self))


def measure_gpu_energy(
    fn: Callable[[], object],
    *,
    batch_size: int,
    meter: EnergyMeter | None = None,
    sync: Callable[[], None] | None = None,
    warmup: int = 3,
    min_seconds: float = 5.0,
    repeats: int = 3,
    idle_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
    device: str = "",
) -> GpuEnergy:
    """Measure energy per inference of ``fn`` (one call = ``batch_size`` inferences).

    Args:
        fn: runs one batch on the GPU (asynchronously is fine; ``sync`` is called before
            each window closes).
        batch_size: samples per call of ``fn``.
        meter: window meter; default :func:`default_meter` (Zeus, else NVML).
        sync: blocks until the GPU is idle; default ``torch.cuda.synchronize``.
        warmup: calls before measuring. min_seconds: minimum window length (s, >= several
            NVML update periods). repeats: windows. idle_s: quiet window for idle power (s).
        sleep / clock: wait ``idle_s`` / read seconds for the window loop (injectable for
            tests with a fake counter clock).
        device: device name copied into the result.

    Returns:
        GpuEnergy in mJ per inference (total and dynamic, mean and std over repeats).

    Raises:
        GpuEnergyUnavailable: no meter can be built (no GPU / no zeus or nvidia-ml-py).
        ValueError / TypeError: bad arguments; a window that saw no time passing.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    for name, v in (("warmup", warmup), ("repeats", repeats)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "warmup" else 1):
            raise ValueError(f"{name} must be an int >= {0 if name == 'warmup' else 1}; got {v!r}")
    check_positive("min_seconds", min_seconds)
    check_positive("idle_s", idle_s)
    if meter is None:
        meter = default_meter()
    if sync is None:
        import torch

        sync = torch.cuda.synchronize

    sync()
    meter.begin()
    sleep(idle_s)
    idle_dt, idle_mj = meter.end()
    if idle_dt <= 0:
        raise ValueError("the idle window measured no elapsed time; check the meter's clock")
    idle_w = idle_mj / 1e3 / idle_dt

    for _ in range(warmup):
        fn()
    sync()

    totals, dynamics, counts, secs = [], [], [], []
    for _ in range(repeats):
        meter.begin()
        calls = 0
        start = clock()
        while calls < 2 or clock() - start < min_seconds:
            fn()
            calls += 1
        sync()
        dt, de = meter.end()
        if dt <= 0:
            raise ValueError("a measurement window saw no elapsed time; check the meter's clock")
        n = calls * batch_size
        totals.append(de / n)
        dynamics.append((de - idle_w * dt * 1e3) / n)
        counts.append(n)
        secs.append(dt)
    std = statistics.stdev if repeats > 1 else (lambda _x: 0.0)
    return GpuEnergy(
        total_mj=statistics.fmean(totals), total_mj_std=float(std(totals)),
        dynamic_mj=statistics.fmean(dynamics), dynamic_mj_std=float(std(dynamics)),
        idle_power_w=idle_w, inferences=counts, seconds=secs, source=meter.source,
        device=device, windows_mj=[t * c for t, c in zip(totals, counts)],
    )

