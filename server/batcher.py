"""Bounded request queue and dynamic batching in front of one executable.

One worker thread per loaded model version takes the oldest request, then keeps collecting
requests with the same per-row shape and dtypes until ``max_batch`` rows are gathered or
``max_delay_ms`` has passed since the first, concatenates them along the batch axis (axis 0),
runs ONE ``executable.infer`` and splits every output back by each caller's row count
(Triton's dynamic batcher works the same way). With ``batching=False`` (lava-sim and loihi,
whose executors run one sample stream at a time) or ``max_batch=1`` there is nothing to merge:
requests then run one at a time in the caller's (gRPC handler's) thread under a lock, which
saves two thread hand-offs per request; the same queue bound, deadline and cancellation rules
apply.

The wait for more requests is skipped when ``inflight()`` (ModelInfer calls currently inside the
server, given by the server) shows no other request that could join, and a request that finds
the server otherwise idle runs directly in its handler thread, so a lone client pays neither
``max_delay_ms`` nor the thread hand-offs.

Requests whose future was cancelled (client disconnected) or whose deadline passed are dropped
before the batch runs. Requests are validated one by one before they are submitted
(stc.server.codec.check_request: rows, finite values, memory estimate), so a bad request is
answered alone; if a merged batch still fails, each of its requests is re-run on its own so
that only the request that causes the failure gets the error. A running ``infer`` is never
interrupted (a request carries at most the max batch of rows, which bounds a run): a request
that runs in its handler thread (inline or idle path) answers when the run ends, even past
its deadline (the client's own gRPC deadline still fires on time). ``submit`` raises
RESOURCE_EXHAUSTED when ``queue_size`` requests are already waiting, and UNAVAILABLE once
``close`` has begun.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import grpc
import numpy as np
from stc.server.errors import ServingError, exhausted, shorten, unavailable
from stc.server.executable import Executable, spike_count
from stc.server.metrics import ServerMetrics
from stc.server.stats import ModelStats

log = logging.getLogger("stc.server")
_STOP = object()


class _Request:
    __slots__ = ("arrays", "rows", "key", "future", "deadline", "submitted")

    def __init__(self, arrays: dict[str, np.ndarray], deadline: float | None,
                 future: Future | None = None) -> None:
        self.arrays = arrays
        self.rows = int(next(iter(arrays.values())).shape[0]) if arrays else 0
        self.key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in arrays.items()))
        self.future: Future = future if future is not None else Future()
        self.deadline = deadline
        self.submitted = time.monotonic()


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
        inflight: number of requests inside the server now (None: always wait max_delay_ms).
        stats: the model's ModelStats (queue / compute / batch counts), or None.

    Raises:
        ValueError: ``max_batch`` < 1, ``queue_size`` < 1 or ``max_delay_ms`` < 0.
    """

    def __init__(self, executable: Executable, label: str, *, max_batch: int = 8,
                 max_delay_ms: float = 2.0, queue_size: int = 256, batching: bool = True,
                 metrics: ServerMetrics | None = None,
                 inflight: Callable[[], int] | None = None,
                 stats: ModelStats | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be >= 0 ms, got {max_delay_ms}")
        self.executable = executable
        self.label = label
        self.batching = bool(batching)
        self.max_batch = int(max_batch) if batching else 1
        self.max_delay = float(max_delay_ms) / 1000.0
        self.metrics = metrics or ServerMetrics()
        self.inflight = inflight
        self.stats = stats
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._carry: collections.deque[_Request] = collections.deque()
        self._closing = threading.Event()
        self.inline = self.max_batch == 1
        self._exec_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._waiting = 0
        self._thread = threading.Thread(target=self._run, name=f"stc-batcher-{label}",
                                        daemon=True)
        if not self.inline:
            self._thread.start()

    # -- client side ------------------------------------------------------------------------
    def submit(self, arrays: dict[str, np.ndarray], deadline: float | None = None,
               future: Future | None = None) -> Future:
        """Queue one request (batch-first arrays) and return a Future of its outputs dict.

        In inline mode (``max_batch == 1``) the request runs before ``submit`` returns, so pass
        ``future`` (already hooked to the RPC's cancellation) to let a client that goes away
        while waiting skip the run.

        Args:
            arrays: ``{input name: [B, ...] array}``, already validated.
            deadline: ``time.monotonic()`` after which the request is dropped, or None.
            future: the Future to complete (a new one if None).

        Raises:
            ServingError: RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (closing).
        """
        if self._closing.is_set():
            raise unavailable(f"model {self.label} is unloading")
        req = _Request(arrays, deadline, future)
        if self.inline:
            return self._run_inline(req)
        if self.inflight is not None and self.inflight() <= 1 and self._queue.empty() \
                and not self._carry and self._exec_lock.acquire(blocking=False):
            try:  # alone in the server: nothing to batch with, skip the worker thread
                if self._closing.is_set():
                    raise unavailable(f"model {self.label} is unloading")
                self._execute([req])
            finally:
                self._exec_lock.release()
            return req.future
        with self._submit_lock:  # no request can slip in behind the stop marker
            if self._closing.is_set():
                raise unavailable(f"model {self.label} is unloading")
            try:
                self._queue.put_nowait(req)
            except queue.Full:
                raise exhausted(f"model {self.label}: request queue is full "
                                f"({self._queue.maxsize} waiting)") from None
        self.metrics.queue_depth.labels(self.label).set(self._queue.qsize())
        return req.future

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, run every request already queued, then stop the worker thread."""
        if self.inline:
            self._closing.set()
            if self._exec_lock.acquire(timeout=-1 if timeout is None else timeout):
                self._exec_lock.release()  # the running request has finished
            return
        with self._submit_lock:
            if not self._closing.is_set():
                self._closing.set()
                self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._exec_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._exec_lock.release()  # a direct (idle-path) run has finished

    def _run_inline(self, req: _Request) -> Future:
        with self._count_lock:
            if self._waiting >= self._queue.maxsize:
                raise exhausted(f"model {self.label}: request queue is full "
                                f"({self._queue.maxsize} waiting)")
            self._waiting += 1
        try:
            wait = -1 if req.deadline is None else max(req.deadline - time.monotonic(), 0.0)
            if not self._exec_lock.acquire(timeout=wait):
                if req.future.set_running_or_notify_cancel():
                    req.future.set_exception(ServingError(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"model {self.label}: deadline passed while queued"))
                return req.future
            try:
                if self._closing.is_set():
                    raise unavailable(f"model {self.label} is unloading")
                self._execute([req])
            finally:
                self._exec_lock.release()
        finally:
            with self._count_lock:
                self._waiting -= 1
        return req.future

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
                if self.inflight is not None and not self._carry and self._queue.empty() \
                        and self.inflight() <= len(batch):
                    remaining = 0.0  # nobody else could join this batch
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
            with self._exec_lock:
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
        try:
            self._run_batch(live, now)
        except Exception as exc:  # noqa: BLE001 - reported to the caller(s) below
            if len(live) > 1:  # find the request that fails: every other one still succeeds
                for req in live:
                    try:
                        self._run_batch([req], time.monotonic())
                    except Exception as one:  # noqa: BLE001
                        self._fail(req, one)
                return
            self._fail(live[0], exc)

    def _run_batch(self, live: list[_Request], started: float) -> None:
        """Run ``live`` (running futures) as one batch and set each future's result.

        Raises:
            Exception: whatever ``infer`` or the output split raised (no future is set then).
        """
        rows = [r.rows for r in live]
        total = sum(rows)
        if len(live) == 1:
            inputs = live[0].arrays
        else:
            inputs = {k: np.concatenate([r.arrays[k] for r in live], axis=0)
                      for k in live[0].arrays}
        t0 = time.perf_counter()
        outputs = self.executable.infer(inputs)
        seconds = time.perf_counter() - t0
        spikes = spike_count(self.executable)
        parts: list[dict[str, np.ndarray]] = [{} for _ in live]
        if len(live) == 1:
            parts = [dict(outputs)]
        else:
            bounds = np.cumsum(rows)[:-1]
            for name, arr in outputs.items():
                arr = np.asarray(arr)
                if arr.ndim == 0 or arr.shape[0] != total:
                    raise RuntimeError(f"output {name!r} has shape {arr.shape}; a batched "
                                       f"executable must return {total} rows first")
                for part, piece in zip(parts, np.split(arr, bounds, axis=0)):
                    part[name] = piece
        queued = [max(started - r.submitted, 0.0) for r in live]
        self.metrics.observe_batch(self.label, total, seconds, spikes)
        self.metrics.observe_queue(self.label, queued, seconds)
        if self.stats is not None:
            self.stats.batch(total, len(live), queued, seconds)
        for req, part in zip(live, parts):
            req.future.set_result(part)

    def _fail(self, req: _Request, exc: Exception) -> None:
        """Answer one request with ``exc``: ValueError/TypeError (the executable refused the
        input) become INVALID_ARGUMENT without a traceback; anything else is INTERNAL."""
        if isinstance(exc, ServingError):
            err = exc
        elif isinstance(exc, (ValueError, TypeError)):
            log.warning("infer refused input", extra={"event": "infer_invalid",
                                                      "model": self.label, "error": str(exc)})
            err = ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"model {self.label} refused the input: {shorten(str(exc))}")
        else:
            log.exception("infer failed for %s", self.label)
            err = ServingError(grpc.StatusCode.INTERNAL, f"model {self.label} failed: "
                               f"{type(exc).__name__}: {shorten(str(exc))}")
        if not req.future.done():
            req.future.set_exception(err)
