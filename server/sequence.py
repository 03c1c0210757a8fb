"""Stateful sequences: OIP/Triton sequence parameters keep each stream's state on the server.

A ``ModelInfer`` (or ``ModelStreamInfer``) request with parameter ``sequence_id`` (int64,
uint64 or string; 0 / "" = no sequence, as in Triton) belongs to a sequence:

- ``sequence_start=true`` starts it (a start on a live id starts it afresh), with every neuron
  at rest; ``sequence_end=true`` returns the last outputs and frees the state;
- every request advances the network by its timesteps (``stc.runtime.stream.Stepper``): a
  static input ``[B, *shape]`` is presented for ``timesteps`` steps (int64 parameter, default
  1), a temporal input ``[B, k, *shape]`` for its k steps; outputs after the network's time
  mean are the mean over the sequence so far, temporal outputs are ``[B, k, *shape]``;
- the requests of one sequence run one at a time, in arrival order; a sequence stays on the
  model version it started on even if a newer version is activated meanwhile.

Limits: ``idle_s`` frees a sequence with no request for that long; at most ``max_sequences``
live (RESOURCE_EXHAUSTED beyond). Errors (INVALID_ARGUMENT) name the problem: an id never
started, a request after ``sequence_end``, a sequence freed for idleness, a batch size that
changes within a sequence; a failed request leaves the sequence's state as it was (a failed
start leaves none). Sequences bypass dynamic batching. Only stc.runtime executables on cpu/gpu
(``graph``, ``numerics``) can run sequences; others get FAILED_PRECONDITION.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc
import numpy as np
from stc.proto import inference_pb2 as pb
from stc.server.codec import decode_inputs, encode_output, select_outputs
from stc.server.errors import ServingError, exhausted, invalid

_REMEMBER = 4096  # ended / expired ids kept for a precise error message


@dataclass(frozen=True)
class SequenceParams:
    """The sequence parameters of one request."""

    id: int | str
    start: bool
    end: bool
    steps: int


def _param(request, name: str):
    p = request.parameters.get(name)
    if p is None:
        return None
    kind = p.WhichOneof("parameter_choice")
    return None if kind is None else getattr(p, kind)


def params_of(request) -> SequenceParams | None:
    """SequenceParams of a ModelInferRequest, or None when it carries no sequence id.

    Raises:
        ServingError: INVALID_ARGUMENT for a malformed sequence parameter.
    """
    sid = _param(request, "sequence_id")
    if sid is None or sid == 0 or sid == "":
        for name in ("sequence_start", "sequence_end"):
            if _param(request, name):
                raise invalid(f"{name} given without a sequence_id")
        return None
    if isinstance(sid, (bool, float)):
        raise invalid("sequence_id must be an int64, uint64 or string parameter")
    flags = {}
    for name in ("sequence_start", "sequence_end"):
        v = _param(request, name)
        if v is not None and not isinstance(v, bool):
            raise invalid(f"{name} must be a bool parameter")
        flags[name] = bool(v)
    steps = _param(request, "timesteps")
    if steps is None:
        steps = 1
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000:
        raise invalid(f"timesteps must be an int64 in 1..100000, got {steps!r}")
    return SequenceParams(sid, flags["sequence_start"], flags["sequence_end"], int(steps))


class _Live:
    def __init__(self, model, stepper) -> None:
        self.model = model
        self.stepper = stepper
        self.state = None
        self.last = time.monotonic()
        self.lock = threading.Lock()


class SequenceManager:
    """Live sequences of every model of one server (module docstring).

    Args:
        max_sequences: most live sequences (all models together).
        idle_s: seconds without a request after which a sequence's state is freed.

    Raises:
        ValueError: max_sequences < 1 or idle_s <= 0.
    """

    def __init__(self, *, max_sequences: int = 1024, idle_s: float = 60.0) -> None:
        if int(max_sequences) < 1 or float(idle_s) <= 0:
            raise ValueError(f"need max_sequences >= 1 and idle_s > 0; got {max_sequences}, "
                             f"{idle_s}")
        self.max_sequences = int(max_sequences)
        self.idle_s = float(idle_s)
        self._live: dict[tuple[str, object], _Live] = {}
        self._gone: OrderedDict[tuple[str, object], str] = OrderedDict()
        self._steppers: dict[int, tuple[object, object]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="stc-sequences", daemon=True)
        self._sweeper.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def _forget(self, key, why: str) -> None:
        self._live.pop(key, None)
        self._gone[key] = why
        self._gone.move_to_end(key)
        while len(self._gone) > _REMEMBER:
            self._gone.popitem(last=False)

    def expire(self, now: float | None = None) -> int:
        """Free sequences idle for more than ``idle_s``; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [k for k, e in self._live.items() if now - e.last > self.idle_s
                   and not e.lock.locked()]
            for k in old:
                self._forget(k, f"freed after {self.idle_s:g} s without a request")
            used = {id(e.model.executable) for e in self._live.values()}
            for k in [k for k, (exe, _) in self._steppers.items()
                      if k not in used and getattr(exe, "_closed", False)]:
                self._steppers.pop(k)
        return len(old)

    def _sweep(self) -> None:
        period = min(max(self.idle_s / 4, 0.05), 5.0)
        while not self._stop.wait(period):
            self.expire()

    def close(self) -> None:
        """Stop the idle sweeper and drop every sequence."""
        self._stop.set()
        with self._lock:
            self._live.clear()

    def _stepper(self, model):
        exe = model.executable
        entry = self._steppers.get(id(exe))
        if entry is not None and entry[0] is exe:
            return entry[1]
        graph, numerics = getattr(exe, "graph", None), getattr(exe, "numerics", None)
        if graph is None or numerics not in ("float", "fixed"):
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"model {model.name}:{model.version} cannot run stateful "
                               "sequences: only stc.runtime executables on cpu/gpu keep "
                               "state between requests")
        from stc.runtime.stream import Stepper

        try:
            st = Stepper(graph, numerics=numerics,
                         kernel_backend=getattr(exe, "kernel_backend", "torch"),
                         device=getattr(exe, "device", "cpu"))
        except ValueError as e:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"model {model.name}:{model.version}: {e}") from None
        self._steppers[id(exe)] = (exe, st)
        return st

    def infer(self, repository, request, seq: SequenceParams,
              max_request_bytes: int) -> pb.ModelInferResponse:
        """Run one request of a sequence and build its response.

        Raises:
            ServingError: NOT_FOUND (model), INVALID_ARGUMENT (see the module docstring),
            RESOURCE_EXHAUSTED (too many live sequences), FAILED_PRECONDITION (model cannot
            keep state).
        """
        key = (request.model_name, seq.id)
        with self._lock:
            live = self._live.get(key)
            if seq.start:
                model = repository.get(request.model_name, request.model_version)
                if live is None and len(self._live) >= self.max_sequences:
                    raise exhausted(f"{len(self._live)} sequences are live, the limit is "
                                    f"{self.max_sequences}; end or let some expire")
                live = _Live(model, self._stepper(model))
                self._live[key] = live
                self._gone.pop(key, None)
            elif live is None:
                why = self._gone.get(key)
                if why is not None:
                    raise invalid(f"sequence {seq.id!r} of model {request.model_name!r} is "
                                  f"not live: it was {why}; start a new one with "
                                  "sequence_start=true")
                raise invalid(f"sequence {seq.id!r} of model {request.model_name!r} was never "
                              "started: send sequence_start=true with its first request")
            live.last = time.monotonic()
        model = live.model
        try:
            with live.lock:
                outputs = self._run(live, request, seq, max_request_bytes)
                live.last = time.monotonic()
        except BaseException:
            if seq.start:
                with self._lock:
                    if self._live.get(key) is live:
                        self._live.pop(key)
            raise
        if seq.end:
            with self._lock:
                if self._live.get(key) is live:
                    self._forget(key, "ended (sequence_end was sent)")
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                         id=request.id)
        for spec in select_outputs([o.name for o in request.outputs],
                                   model.executable.outputs):
            shape, raw = encode_output(spec.name, outputs[spec.name], spec)
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response

    def _run(self, live: _Live, request, seq: SequenceParams,
             max_request_bytes: int) -> dict[str, np.ndarray]:
        import torch

        exe = live.model.executable
        arrays = decode_inputs(request, exe.inputs, max_request_bytes)
        stepper = live.stepper
        temporal_in = {n.name for n in stepper.graph.inputs() if n.temporal}
        feeds = {}
        for name, a in arrays.items():
            t = torch.from_numpy(np.ascontiguousarray(a))
            feeds[name] = t.transpose(0, 1).contiguous() if name in temporal_in else t
        state = None if seq.start else live.state
        try:
            out, live.state = stepper.step(feeds, state, steps=seq.steps)
        except ValueError as e:
            raise invalid(f"sequence {seq.id!r}: {e}") from None
        result = {}
        for name, y in out.items():
            y = y.transpose(0, 1) if stepper.temporal[name] else y
            result[name] = y.detach().to("cpu", torch.float32).numpy()
        return result


def stream_responses(servicer, request_iterator, context):
    """ModelStreamInfer body: for each request, ``servicer._infer`` (unary path, sequences
    included) and one ``ModelStreamInferResponse``: ``infer_response`` or, on failure,
    ``error_message`` (``CODE: message``) while the stream goes on, as Triton does."""
    for request in request_iterator:
        t0 = time.perf_counter()
        status = "OK"
        servicer.state.enter()
        try:
            yield pb.ModelStreamInferResponse(infer_response=servicer._infer(request, context))
        except ServingError as err:
            status = err.code.name
            yield pb.ModelStreamInferResponse(error_message=f"{err.code.name}: {err.message}")
        finally:
            servicer.state.leave()
            servicer.metrics.observe_request(request.model_name,
                                             request.model_version or "latest", status,
                                             time.perf_counter() - t0)
