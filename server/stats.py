"""Per-model inference statistics, the way Triton counts them (ModelStatistics RPC and the
``nv_inference_*`` Prometheus families).

One ``ModelStats`` per loaded model version. Durations are kept in nanoseconds (ns) as Triton's
``StatisticDuration{count, ns}``:

- success / fail: whole requests inside the server (decode to encode), by outcome;
- queue: time from a request's submission to the start of the batch that runs it;
- compute_infer: the executable's ``infer`` call of the batch that ran the request (each
  request of a merged batch is charged the whole batch's time, as Triton does);
- inference_count: rows (samples) inferred; execution_count: executed batches;
- batch: per executed batch size, how many batches and their compute time.

Source: Triton's grpc_service.proto (ModelStatistics, InferStatistics, InferBatchStatistics)
and its metrics documentation (``nv_inference_request_success``, ``nv_inference_count``,
``nv_inference_exec_count``, ``nv_inference_queue_duration_us``, ...).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Duration:
    """Triton's StatisticDuration: how many events and their total time (ns)."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, n: int = 1) -> None:
        """Count ``n`` events of ``seconds`` each (s)."""
        self.count += n
        self.ns += int(seconds * 1e9) * n


@dataclass
class ModelStats:
    """Thread-safe counters of one model version (see the module docstring)."""

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    batches: dict[int, Duration] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request(self, ok: bool, seconds: float) -> None:
        """One finished request (s inside the server), successful or not."""
        with self._lock:
            (self.success if ok else self.fail).add(seconds)
            if ok:
                self.last_inference_ms = int(time.time() * 1000)

    def batch(self, rows: int, requests: int, queue_s: list[float], compute_s: float) -> None:
        """One executed batch of ``rows`` rows from ``requests`` requests.

        Args:
            rows: rows in the batch. requests: requests merged into it.
            queue_s: each request's queue time (s). compute_s: the infer call's time (s).
        """
        with self._lock:
            self.inference_count += rows
            self.execution_count += 1
            for q in queue_s:
                self.queue.add(q)
            self.compute_infer.add(compute_s, requests)
            self.batches.setdefault(rows, Duration()).add(compute_s)

    def snapshot(self) -> dict:
        """A consistent copy: ``{success, fail, queue, compute_infer: (count, ns), ...}``."""
        with self._lock:
            return {
                "success": (self.success.count, self.success.ns),
                "fail": (self.fail.count, self.fail.ns),
                "queue": (self.queue.count, self.queue.ns),
                "compute_infer": (self.compute_infer.count, self.compute_infer.ns),
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "last_inference_ms": self.last_inference_ms,
                "batches": {k: (v.count, v.ns) for k, v in sorted(self.batches.items())},
            }
