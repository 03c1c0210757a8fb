"""Bounded request queue and dynamic batching in front of one executable.

One worker thread per loaded model version takes the oldest request, then keeps collecting
requests with the same per-row shape and dtypes until ``max_batch`` rows are gathered or
``max_delay_ms`` has passed since the first, concatenates them along the batch axis (axis 0),
runs ONE ``executable.infer`` and splits every output back by each caller's row count
(Triton's dynamic batcher works the same way). With ``batching=False`` (lava-sim and loihi,
whose executors run one sample stream at a time) requests are run one by one in arrival order.

Requests whose future was cancelled (client disconnected) or whose deadline passed are dropped
before the batch runs. ``submit`` raises RESOURCE_EXHAUSTED when ``queue_size`` requests are
already waiting, and UNAVAILABLE once ``close`` has begun.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from concurrent.futures import Future

import grpc
import numpy as np
from stc.server.errors import ServingError, exhausted, unavailable
from stc.server.executable import Executable, spike_count
from stc.server.metrics import ServerMetrics

log = logging.getLogger("stc.server")
_STOP = object()


class _Request:
    __slots__ = ("arrays", "rows", "key", "future", "deadline")

    def __init__(self, arrays: dict[str, np.ndarray], deadline: float | None) -> None:
        self.arrays = arrays
        self.rows = int(next(iter(arrays.values())).shape[0]) if arrays else 0
        self.key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in arrays.items()))
        self.future: Future = Future()
        self.deadline = deadline


class Batcher:
    """Queue + worker thread for one executable.

    Args:
        executable: the model (Executable protocol); ``infer`` gets ``{name: [B, ...]}``.
        label: model label for metrics and logs (``name:version``).
        max_batch: most rows per executed batch (>= 1).
        max_delay_ms: longest wait (ms) for more requests after the first of a batch.
        queue_size: most requests waiting; more raise RESOURCE_EXHAUSTED.
        batching: merge requests (True on cpu/gpu) or run them one by one.
        metrics: where batch sizes, queue depth and spike counts are recorded.

    Raises:
        ValueError: ``max_batch`` < 1, ``queue_size`` < 1 or ``max_delay_ms`` < 0.
    """

    def __init__(self, executable: Executable, label: str, *, max_batch: int = 8,
                 max_delay_ms: float = 2.0, queue_size: int = 256, batching: bool = True,
                 metrics: ServerMetrics | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0 ms, got {max_delay_ms}")
        self.executable = executable
        self.label = label
        self.max_batch = int(max_batch) if batching else 1
        self.max_delay = float(max_delay_ms) / 1000.0
        self.metrics = metrics or ServerMetrics()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._carry: collections.deque[_Request] = collections.deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stc-batcher-{label}",
                                        daemon=True)
        self._thread.start()

    # -- client side ------------------------------------------------------------------------
    def submit(self, arrays: dict[str, np.ndarray], deadline: float | None = None) -> Future:
        """Queue one request (batch-first arrays) and return a Future of its outputs dict.

        Args:
            arrays: ``{input name: [B, ...] array}``, already validated.
            deadline: ``time.monotonic()`` after which the request is dropped, or None.

        Raises:
            ServingError: RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (closing).
        """
        if self._closing.is_set():
            raise unavailable(f"model {self.label} is unloading")
        req = _Request(arrays, deadline)
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            raise exhausted(f"model {self.label}: request queue is full "
                            f"({self._queue.maxsize} waiting)") from None
        self.metrics.queue_depth.labels(self.label).set(self._queue.qsize())
        return req.future

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, run every request already queued, then stop the worker thread."""
        if not self._closing.is_set():
            self._closing.set()
            self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- worker side ------------------------------------------------------------------------
    def _next(self, timeout: float | None):
        if self._carry:
            return self._carry.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 \
                else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        stopping = False
        while True:
            first = self._next(None if not stopping else 0)
            if first is None:
                return  # stopping and nothing left
            if first is _STOP:
                stopping = True
                continue
            batch, rows = [first], first.rows
            end = time.monotonic() + self.max_delay
            while rows < self.max_batch:
                remaining = end - time.monotonic()
                item = self._next(remaining if not stopping else 0)
                if item is None:
                    break
                if item is _STOP:
                    stopping = True
                    continue
                if item.key != first.key or rows + item.rows > self.max_batch:
                    self._carry.append(item)
                    break
                batch.append(item)
                rows += item.rows
            self.metrics.queue_depth.labels(self.label).set(self._queue.qsize())
            self._execute(batch)

    def _execute(self, batch: list[_Request]) -> None:
        now = time.monotonic()
        live = []
        for req in batch:
            if req.deadline is not None and now > req.deadline:
                if req.future.set_running_or_notify_cancel():
                    req.future.set_exception(ServingError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"model {self.label}: deadline passed while queued"))
            elif req.future.set_running_or_notify_cancel():
                live.append(req)
        if not live:
            return
        rows = [r.rows for r in live]
        total = sum(rows)
        try:
            if len(live) == 1:
                inputs = live[0].arrays
            else:
                inputs = {k: np.concatenate([r.arrays[k] for r in live], axis=0)
                          for k in live[0].arrays}
            t0 = time.perf_counter()
            outputs = self.executable.infer(inputs)
            seconds = time.perf_counter() - t0
            spikes = spike_count(self.executable)
            self.metrics.observe_batch(self.label, total, seconds, spikes)
            if len(live) == 1:
                live[0].future.set_result(dict(outputs))
                return
            parts: list[dict[str, np.ndarray]] = [{} for _ in live]
            bounds = np.cumsum(rows)[:-1]
            for name, arr in outputs.items():
                arr = np.asarray(arr)
                if arr.ndim == 0 or arr.shape[0] != total:
                    raise RuntimeError(f"output {name!r} has shape {arr.shape}; a batched "
                                       f"executable must return {total} rows first")
                for part, piece in zip(parts, np.split(arr, bounds, axis=0)):
                    part[name] = piece
            for req, part in zip(live, parts):
                req.future.set_result(part)
        except Exception as exc:  # noqa: BLE001 - reported to every caller of the batch
            log.exception("infer failed for %s", self.label)
            err = exc if isinstance(exc, ServingError) else ServingError(
                grpc.StatusCode.INTERNAL, f"model {self.label} failed: {type(exc).__name__}: "
                f"{exc}")
            for req in live:
                if not req.future.done():
                    req.future.set_exception(err)
