"""Wall-clock timing of inference calls: warm-up, synchronised repeats, median and p90."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Latency of one call (one batch) in seconds over ``repeats`` runs.

    Attributes:
        median_s, p90_s, min_s: latency statistics (s per batch).
        batch_size: samples per call; throughput = batch_size / median_s (samples/s).
        samples_s: every timed latency, sorted (s); max_s is the last.
    """

    median_s: float
    p90_s: float
    min_s: float
    repeats: int
    batch_size: int
    samples_s: tuple[float, ...] = ()

    @property
    def max_s(self) -> float:
        """Slowest timed call (s); the p90 when no samples were kept."""
        return self.samples_s[-1] if self.samples_s else self.p90_s

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch_size / self.median_s

    def to_dict(self) -> dict:
        """JSON view with units in the key names."""
        return {"median_ms": self.median_s * 1e3, "p90_ms": self.p90_s * 1e3,
                "min_ms": self.min_s * 1e3, "max_ms": self.max_s * 1e3, "repeats": self.repeats,
                "batch_size": self.batch_size, "throughput_per_s": self.throughput,
                "samples_ms": [t * 1e3 for t in self.samples_s]}


def _check_counts(batch_size: int, warmup: int, repeats: int) -> None:
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise ValueError(f"need batch_size >= 1, warmup >= 0, repeats >= 1; got "
                         f"{batch_size}, {warmup}, {repeats}")


def time_calls(fn: Callable[[], object], *, batch_size: int, warmup: int = 2, repeats: int = 5,
               sync: Callable[[], None] = lambda: None,
               clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``fn`` (one batch of ``batch_size`` samples): ``warmup`` calls, then ``repeats``
    calls each bracketed by ``sync()`` (``torch.cuda.synchronize`` on GPU).

    Raises:
        ValueError: batch_size < 1, warmup < 0 or repeats < 1.
    """
    _check_counts(batch_size, warmup, repeats)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return Timing(statistics.median(times), p90, times[0], repeats, batch_size, tuple(times))


def time_paired(fn_a: Callable[[], object], fn_b: Callable[[], object], *, batch_size: int,
                warmup: int = 2, repeats: int = 5, sync: Callable[[], None] = lambda: None,
                clock: Callable[[], float] = time.perf_counter) -> tuple[Timing, Timing]:
    """Time two implementations interleaved (A B, B A, A B, ...), so that load drifts on a
    shared machine hit both alike. Returns (timing of A, timing of B); see :func:`time_calls`.

    Raises:
        ValueError: batch_size < 1, warmup < 0 or repeats < 1.
    """
    _check_counts(batch_size, warmup, repeats)
    for _ in range(warmup):
        fn_a()
        fn_b()
    sync()
    times: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(repeats):
        order = (("a", fn_a), ("b", fn_b)) if i % 2 == 0 else (("b", fn_b), ("a", fn_a))
        for key, fn in order:
            t0 = clock()
            fn()
            sync()
            times[key].append(clock() - t0)
    out = []
    for key in ("a", "b"):
        ts = sorted(times[key])
        p90 = ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]
        out.append(Timing(statistics.median(ts), p90, ts[0], repeats, batch_size, tuple(ts)))
    return out[0], out[1]
