"""The transport-neutral inference core shared by the gRPC servicer and the REST app.

Both transports hand an ``inference.ModelInferRequest`` (the REST app builds one from its JSON
and binary body) to ``InferenceCore.infer``, so request validation (stc.server.codec), the
per-request checks (rows, finite values, memory estimate), deadlines, dynamic batching
(stc.server.batcher), statistics and metrics are the same code for both. The same holds for
metadata, configuration, statistics and the repository index.

Order of checks in ``infer``: the server accepts requests (else UNAVAILABLE) -> the deadline has
not passed while the request waited for a handler thread (else DEADLINE_EXCEEDED) -> the model
is loaded (NOT_FOUND) -> tensors match the signature and the byte limit (codec.decode_inputs) ->
the request alone is acceptable (codec.check_request: INVALID_ARGUMENT for batch 0, more rows
than the max batch, NaN/inf; RESOURCE_EXHAUSTED for the memory estimate) -> it joins the
model's queue (RESOURCE_EXHAUSTED when full) -> the answer comes within the deadline
(DEADLINE_EXCEEDED, also while queued). Spec: kserve/open-inference-protocol; Triton's
extensions for config, statistics and the repository (shared/reference/serving.md).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable

import grpc
from stc.proto import inference_pb2 as pb
from stc.server.codec import check_request, decode_inputs, encode_output, select_outputs
from stc.server.errors import ServingError, clip, deadline, invalid, unavailable
from stc.server.metrics import ServerMetrics
from stc.server.repository import LoadedModel, ModelRepository, version_key

log = logging.getLogger("stc.server")


class ServerState:
    """Shared flags.

    ``ready`` is False while starting and from the start of a graceful shutdown on (health,
    ServerReady and ModelReady report it); ``accepting`` (ModelInfer is served) is cleared only
    when the shutdown delay has passed, so load balancers can notice NOT_SERVING while
    requests that still arrive are answered.
    """

    def __init__(self) -> None:
        self.accepting = threading.Event()
        self.ready = threading.Event()
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


class InferenceCore:
    """Runs requests against ``repository``'s models (see the module docstring).

    Args:
        repository: loaded models.
        state: shared ServerState.
        metrics: where request counts and latencies go.
        max_request_bytes: largest total input size and largest memory estimate (bytes).
        request_timeout_s: server-side cap on one request's time in the server (s).
        max_request_rows: most rows per request (default: the repository's max batch).
    """

    def __init__(self, repository: ModelRepository, state: ServerState, metrics: ServerMetrics,
                 *, max_request_bytes: int = 64 << 20, request_timeout_s: float = 30.0,
                 max_request_rows: int | None = None) -> None:
        self.repository = repository
        self.state = state
        self.metrics = metrics
        self.max_request_bytes = int(max_request_bytes)
        self.request_timeout_s = float(request_timeout_s)
        self.max_request_rows = int(max_request_rows or repository.max_batch)

    # -- inference --------------------------------------------------------------------------
    def timeout(self, request: pb.ModelInferRequest, remaining: float | None) -> float:
        """Seconds this request may still take: the server cap, the transport's remaining
        deadline and Triton's ``timeout`` request parameter (microseconds), whichever is
        least (may be <= 0 when the deadline already passed)."""
        timeout = self.request_timeout_s
        if remaining is not None:
            timeout = min(timeout, remaining)
        param = request.parameters.get("timeout")
        if param is not None and param.WhichOneof("parameter_choice") in ("int64_param",
                                                                         "uint64_param"):
            micros = getattr(param, param.WhichOneof("parameter_choice"))
            if micros > 0:
                timeout = min(timeout, micros / 1e6)
        return timeout

    def infer(self, request: pb.ModelInferRequest, *, remaining: float | None = None,
              on_cancel: Callable[[Callable[[], object]], object] | None = None
              ) -> pb.ModelInferResponse:
        """Run one request and return its response (outputs raw, in the requested order).

        Args:
            request: the OIP request.
            remaining: the transport's remaining deadline (s), or None.
            on_cancel: registers a callback to run when the client goes away (gRPC's
                ``context.add_callback``), or None.

        Raises:
            ServingError: with the status code of the failed check (module docstring).
        """
        t0 = time.perf_counter()
        status = "OK"
        model: LoadedModel | None = None
        self.state.enter()
        try:
            response, model = self._infer(request, remaining, on_cancel)
            return response
        except ServingError as err:
            status = err.code.name
            model = model or getattr(err, "model", None)
            raise
        finally:
            self.state.leave()
            seconds = time.perf_counter() - t0
            self.metrics.observe_request(model.name if model else None,
                                         model.version if model else None, status, seconds)
            if model is not None:
                model.stats.request(status == "OK", seconds)
            log.info("infer", extra={"event": "infer",
                                     "model": model.name if model else clip(request.model_name),
                                     "version": model.version if model else
                                     clip(request.model_version),
                                     "id": clip(request.id), "status": status,
                                     "latency_ms": round(seconds * 1e3, 3)})

    def _infer(self, request, remaining, on_cancel) -> tuple[pb.ModelInferResponse, LoadedModel]:
        if not self.state.accepting.is_set():
            raise unavailable("server is not accepting requests (starting or shutting down)")
        timeout = self.timeout(request, remaining)
        if timeout <= 0:
            raise deadline("deadline passed before the request was handled")
        end = time.monotonic() + timeout
        model = None
        try:
            for attempt in range(2):
                model = self.repository.get(request.model_name, request.model_version)
                exe = model.executable
                arrays = decode_inputs(request, exe.inputs, self.max_request_bytes)
                out_specs = select_outputs([o.name for o in request.outputs], exe.outputs)
                check_request(arrays, max_rows=self.max_request_rows, out_specs=out_specs,
                              max_bytes=self.max_request_bytes)
                future: concurrent.futures.Future = concurrent.futures.Future()
                if on_cancel is not None:
                    on_cancel(future.cancel)  # client gone -> the request is skipped
                try:
                    model.batcher.submit(arrays, end, future)
                    break
                except ServingError as err:
                    # the version was hot-replaced between get() and submit(): retry once on
                    # the new executable
                    if err.code != grpc.StatusCode.UNAVAILABLE or attempt == 1:
                        raise
            try:
                outputs = future.result(timeout=max(end - time.monotonic(), 0.0))
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise deadline(f"model {model.name}:{model.version} did not answer within "
                               f"{timeout:.3f} s") from None
            except concurrent.futures.CancelledError:
                raise ServingError(grpc.StatusCode.CANCELLED, "request cancelled") from None
        except ServingError as err:
            err.model = model  # type: ignore[attr-defined] - for the metrics labels
            raise
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version,
                                         id=request.id)
        for spec in out_specs:
            if spec.name not in outputs:
                raise ServingError(grpc.StatusCode.INTERNAL,
                                   f"executable returned no output {spec.name!r}")
            shape, raw = encode_output(spec.name, outputs[spec.name], spec)
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
            response.raw_output_contents.append(raw)
        return response, model

    # -- metadata, config, statistics, repository -------------------------------------------
    def model_ready(self, name: str, version: str = "") -> bool:
        """The model (and version; "" = latest) is loaded and the server is ready."""
        try:
            self.repository.get(name, version)
        except ServingError:
            return False
        return self.state.ready.is_set()

    def metadata(self, name: str, version: str = "") -> pb.ModelMetadataResponse:
        """OIP model metadata: versions, platform ``stc_<backend>``, tensor specs.

        Raises:
            ServingError: NOT_FOUND if the model / version is not loaded.
        """
        model = self.repository.get(name, version)
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

    def config(self, name: str, version: str = "") -> pb.ModelConfigResponse:
        """Triton-style model configuration: ``max_batch_size`` (0 when the model runs one
        request at a time, lava-sim / loihi), tensor types and dims (without the batch
        dimension when max_batch_size > 0), the dynamic batcher's delay, and each input's
        contract as JSON in ``parameters["input_contract.<input>"]``.

        Raises:
            ServingError: NOT_FOUND if the model / version is not loaded.
        """
        model = self.repository.get(name, version)
        exe = model.executable
        max_batch = model.batcher.max_batch if model.batcher.batching else 0
        cut = 1 if max_batch else 0

        def dtype(datatype: str) -> int:
            return pb.DataType.Value(f"TYPE_{datatype}") if f"TYPE_{datatype}" in \
                pb.DataType.keys() else pb.TYPE_INVALID

        cfg = pb.ModelConfig(
            name=model.name, platform=f"stc_{self.repository.backend}", backend="stc",
            max_batch_size=max_batch,
            input=[pb.ModelInput(name=s.name, data_type=dtype(s.datatype),
                                 dims=list(s.shape)[cut:]) for s in exe.inputs],
            output=[pb.ModelOutput(name=s.name, data_type=dtype(s.datatype),
                                   dims=list(s.shape)[cut:]) for s in exe.outputs])
        graph = getattr(exe, "graph", None) or getattr(exe, "_graph", None)
        if graph is not None:  # the bundle's input contract (stc.runtime.contract)
            import json

            from stc.runtime.contract import contracts_of

            for inp, contract in contracts_of(graph).items():
                cfg.parameters[f"input_contract.{inp}"].string_value = json.dumps(
                    contract, sort_keys=True)
        if max_batch:
            cfg.dynamic_batching.max_queue_delay_microseconds = int(
                model.batcher.max_delay * 1e6)
        return pb.ModelConfigResponse(config=cfg)

    def statistics(self, name: str = "", version: str = "") -> pb.ModelStatisticsResponse:
        """Triton-style statistics of one model version, every version of ``name`` ("" version)
        or every loaded model ("" name).

        Raises:
            ServingError: NOT_FOUND if a named model / version is not loaded.
        """
        if not name:
            models = self.repository.loaded()
        elif version:
            models = [self.repository.get(name, version)]
        else:
            self.repository.get(name)  # NOT_FOUND if absent
            models = [self.repository.get(name, v) for v in self.repository.versions(name)]
        out = pb.ModelStatisticsResponse()
        for m in sorted(models, key=lambda m: (m.name, version_key(m.version))):
            snap = m.stats.snapshot()
            entry = out.model_stats.add(name=m.name, version=m.version,
                                        last_inference=snap["last_inference_ms"],
                                        inference_count=snap["inference_count"],
                                        execution_count=snap["execution_count"])
            for key in ("success", "fail", "queue", "compute_infer"):
                count, ns = snap[key]
                getattr(entry.inference_stats, key).CopyFrom(
                    pb.StatisticDuration(count=count, ns=ns))
            for size, (count, ns) in snap["batches"].items():
                entry.batch_stats.add(batch_size=size,
                                      compute_infer=pb.StatisticDuration(count=count, ns=ns))
        return out

    def index(self, ready_only: bool = False) -> pb.RepositoryIndexResponse:
        """Every bundle in the repository (name, version, READY / UNAVAILABLE)."""
        out = pb.RepositoryIndexResponse()
        for name, version in self.repository.on_disk():
            loaded = version in self.repository.versions(name)
            if ready_only and not loaded:
                continue
            out.models.add(name=name, version=version,
                           state="READY" if loaded else "UNAVAILABLE",
                           reason="" if loaded else "unloaded")
        return out

    def load(self, name: str, parameters) -> None:
        """Load every version of ``name`` from the repository (Triton RepositoryModelLoad).

        Raises:
            ServingError: INVALID_ARGUMENT for override parameters (a config or files: stc
                bundles carry their own), NOT_FOUND / INVALID_ARGUMENT from the repository.
        """
        if parameters:
            raise invalid(f"load parameters {clip(sorted(parameters))} are not supported: an "
                          "stc bundle carries its own configuration; upload a new bundle")
        self.repository.load(name)

    def unload(self, name: str) -> None:
        """Unload every version of ``name`` (Triton RepositoryModelUnload).

        Raises:
            ServingError: NOT_FOUND if nothing of ``name`` is loaded.
        """
        self.repository.unload(name)
