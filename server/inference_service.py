"""OIP v2 servicer: ``inference.GRPCInferenceService`` (live, ready, metadata, ModelInfer).

ModelInfer accepts ``raw_input_contents`` (what tritonclient sends) or typed ``contents`` and
always answers with ``raw_output_contents``. Status codes: NOT_FOUND (unknown model/version),
INVALID_ARGUMENT (datatype / shape / byte count / unknown output, message includes the expected
signature), RESOURCE_EXHAUSTED (request larger than the limit, queue full), DEADLINE_EXCEEDED
(client deadline, request ``timeout`` parameter in microseconds as Triton sends it, or the
server's cap), UNAVAILABLE (shutting down), CANCELLED (client went away), INTERNAL (the
executable raised). Spec: kserve/open-inference-protocol (shared/reference/serving.md).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import grpc
from stc.proto import inference_pb2 as pb
from stc.proto import inference_pb2_grpc as pb_grpc
from stc.server import sequence
from stc.server.codec import decode_inputs, encode_output, select_outputs
from stc.server.errors import ServingError, invalid, unavailable
from stc.server.metrics import ServerMetrics
from stc.server.repository import ModelRepository

import stc

log = logging.getLogger("stc.server")


class ServerState:
    """Shared flags: ``accepting`` is False while starting and from graceful shutdown on."""

    def __init__(self) -> None:
        self.accepting = threading.Event()
        self.inflight = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        """Count one in-flight ModelInfer call."""
        with self._lock:
            self.inflight += 1

    def leave(self) -> None:
        """Uncount one in-flight ModelInfer call."""
        with self._lock:
            self.inflight -= 1


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Serves the models of ``repository``.

    Args:
        repository: loaded models.
        state: shared ServerState.
        metrics: where request counts and latencies go.
        max_request_bytes: largest accepted total input tensor size (bytes).
        request_timeout_s: server-side cap on one request's time in the server (s).
        sequences: live stateful sequences (stc.server.sequence); default a new manager.
    """

    def __init__(self, repository: ModelRepository, state: ServerState, metrics: ServerMetrics,
                 *, max_request_bytes: int = 64 << 20, request_timeout_s: float = 30.0,
                 sequences: sequence.SequenceManager | None = None) -> None:
        self.repository = repository
        self.state = state
        self.metrics = metrics
        self.max_request_bytes = int(max_request_bytes)
        self.request_timeout_s = float(request_timeout_s)
        self.sequences = sequence.SequenceManager() if sequences is None else sequences

    def ServerLive(self, request, context):  # noqa: N802 - gRPC method name
        """OIP ServerLive: always live while the process serves RPCs."""
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # noqa: N802
        """OIP ServerReady: false while starting and from graceful shutdown on."""
        return pb.ServerReadyResponse(ready=self.state.accepting.is_set())

    def ServerMetadata(self, request, context):  # noqa: N802
        """OIP ServerMetadata: name "stc", stc's version, no extensions."""
        return pb.ServerMetadataResponse(name="stc", version=stc.__version__, extensions=[])

    def ModelReady(self, request, context):  # noqa: N802
        """OIP ModelReady: the model (and version; "" = latest) is loaded and accepting."""
        try:
            self.repository.get(request.name, request.version)
        except ServingError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.state.accepting.is_set())

    def ModelMetadata(self, request, context):  # noqa: N802
        """OIP ModelMetadata: versions, platform ``stc_<backend>``, specs; NOT_FOUND if unknown."""
        try:
            model = self.repository.get(request.name, request.version)
        except ServingError as err:
            context.abort(err.code, err.message)
        exe = model.executable
        meta = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=model.name,
            versions=self.repository.versions(model.name),
            platform=f"stc_{self.repository.backend}",
            inputs=[meta(name=s.name, datatype=s.datatype, shape=list(s.shape))
                    for s in exe.inputs],
            outputs=[meta(name=s.name, datatype=s.datatype, shape=list(s.shape))
                     for s in exe.outputs],
        )

    def _timeout(self, request, context) -> float:
        timeout = self.request_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        param = request.parameters.get("timeout")
        if param is not None and param.WhichOneof("parameter_choice") in ("int64_param",
                                                                         "uint64_param"):
            micros = getattr(param, param.WhichOneof("parameter_choice"))
            if micros > 0:
                timeout = min(timeout, micros / 1e6)
        return max(timeout, 0.0)

    def _infer(self, request, context) -> pb.ModelInferResponse:
        if not self.state.accepting.is_set():
            raise unavailable("server is not accepting requests (starting or shutting down)")
        seq = sequence.params_of(request)  # stateful streaming: stc.server.sequence
        if seq is not None:
            return self.sequences.infer(self.repository, request, seq, self.max_request_bytes)
        timeout = self._timeout(request, context)
        for attempt in range(2):
            model = self.repository.get(request.model_name, request.model_version)
            exe = model.executable
            arrays = decode_inputs(request, exe.inputs, self.max_request_bytes)
            out_specs = select_outputs([o.name for o in request.outputs], exe.outputs)
            rows = {a.shape[0] for a in arrays.values() if a.ndim > 0}
            if len(rows) > 1:
                raise invalid(f"inputs have different batch sizes {sorted(rows)}; expected one")
            future: concurrent.futures.Future = concurrent.futures.Future()
            context.add_callback(future.cancel)  # client gone -> the request is skipped
            try:
                model.batcher.submit(arrays, time.monotonic() + timeout, future)
                break
            except ServingError as err:
                # the version was hot-replaced between get() and submit(): retry once on the
                # new executable
                if err.code != grpc.StatusCode.UNAVAILABLE or attempt == 1:
                    raise
        try:
            outputs = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"model {model.name}:{model.version} did not answer within "
                               f"{timeout:.3f} s") from None
        except concurrent.futures.CancelledError:
            raise ServingError(grpc.StatusCode.CANCELLED, "request cancelled") from None
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                         id=request.id)
        for spec in out_specs:
            if spec.name not in outputs:
                raise ServingError(grpc.StatusCode.INTERNAL,
                                   f"executable returned no output {spec.name!r}")
            shape, raw = encode_output(spec.name, outputs[spec.name], spec)
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response

    def ModelInfer(self, request, context):  # noqa: N802
        """OIP ModelInfer (see the module docstring for validation and status codes)."""
        t0 = time.perf_counter()
        status = "OK"
        self.state.enter()
        try:
            return self._infer(request, context)
        except ServingError as err:
            status = err.code.name
            context.abort(err.code, err.message)
        finally:
            self.state.leave()
            seconds = time.perf_counter() - t0
            self.metrics.observe_request(request.model_name, request.model_version or "latest",
                                         status, seconds)
            log.info("infer", extra={"event": "infer", "model": request.model_name,
                                     "version": request.model_version, "id": request.id,
                                     "status": status, "latency_ms": round(seconds * 1e3, 3)})

    def ModelStreamInfer(self, request_iterator, context):  # noqa: N802
        """Triton's streaming RPC: one response per request, in order; errors go into
        ``error_message`` and the stream continues (stc.server.sequence.stream_responses)."""
        yield from sequence.stream_responses(self, request_iterator, context)
