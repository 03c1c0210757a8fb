"""OIP v2 servicer: ``inference.GRPCInferenceService`` (live, ready, metadata, ModelInfer, and
Triton's ModelConfig, ModelStatistics, RepositoryIndex, RepositoryModelLoad/Unload).

Every method is a thin adapter over ``stc.server.core.InferenceCore``, which the REST app
(stc.server.rest) shares. ModelInfer accepts ``raw_input_contents`` (what tritonclient sends)
or typed ``contents`` and always answers with ``raw_output_contents``. Status codes: NOT_FOUND
(unknown model/version), INVALID_ARGUMENT (datatype / shape / byte count / unknown output,
message includes the expected signature; batch 0, more rows than the max batch, NaN or inf),
RESOURCE_EXHAUSTED (request larger than the limit, queue full, too many RPCs), DEADLINE_EXCEEDED
(client deadline, request ``timeout`` parameter in microseconds as Triton sends it, or the
server's cap; also while queued), UNAVAILABLE (shutting down), CANCELLED (client went away),
PERMISSION_DENIED (repository RPCs on a ``--read-only`` server), INTERNAL (the executable
raised). Spec: kserve/open-inference-protocol (shared/reference/serving.md).
"""

from __future__ import annotations

import logging

from stc.proto import inference_pb2 as pb
from stc.proto import inference_pb2_grpc as pb_grpc
from stc.server import sequence
from stc.server.core import InferenceCore, ServerState
from stc.server.errors import ServingError, permission_denied, unavailable
from stc.server.metrics import ServerMetrics
from stc.server.repository import ModelRepository

import stc

log = logging.getLogger("stc.server")

__all__ = ["InferenceServicer", "ServerState"]

# OIP / Triton protocol extensions this server implements (ServerMetadata.extensions).
EXTENSIONS = ["model_configuration", "statistics", "model_repository"]


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Serves the models of ``repository``.

    Args:
        repository: loaded models.
        state: shared ServerState.
        metrics: where request counts and latencies go.
        max_request_bytes: largest accepted total input tensor size (bytes).
        request_timeout_s: server-side cap on one request's time in the server (s).
        read_only: refuse RepositoryModelLoad / Unload with PERMISSION_DENIED.
        core: an InferenceCore to share (the REST app's); built from the above if None.
        sequences: live stateful sequences (stc.server.sequence); default a new manager.
    """

    def __init__(self, repository: ModelRepository, state: ServerState, metrics: ServerMetrics,
                 *, max_request_bytes: int = 64 << 20, request_timeout_s: float = 30.0,
                 read_only: bool = False, core: InferenceCore | None = None,
                 sequences: sequence.SequenceManager | None = None) -> None:
        self.repository = repository
        self.state = state
        self.metrics = metrics
        self.read_only = read_only
        self.core = core or InferenceCore(repository, state, metrics,
                                          max_request_bytes=max_request_bytes,
                                          request_timeout_s=request_timeout_s)
        self.sequences = sequence.SequenceManager() if sequences is None else sequences

    def ServerLive(self, request, context):  # noqa: N802 - gRPC method name
        """OIP ServerLive: always live while the process serves RPCs."""
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # noqa: N802
        """OIP ServerReady: false while starting and from graceful shutdown on."""
        return pb.ServerReadyResponse(ready=self.state.ready.is_set())

    def ServerMetadata(self, request, context):  # noqa: N802
        """OIP ServerMetadata: name "stc", stc's version, the extensions implemented."""
        return pb.ServerMetadataResponse(name="stc", version=stc.__version__,
                                         extensions=EXTENSIONS)

    def ModelReady(self, request, context):  # noqa: N802
        """OIP ModelReady: the model (and version; "" = latest) is loaded and accepting."""
        return pb.ModelReadyResponse(ready=self.core.model_ready(request.name, request.version))

    def ModelMetadata(self, request, context):  # noqa: N802
        """OIP ModelMetadata: versions, platform ``stc_<backend>``, specs; NOT_FOUND if unknown."""
        return self._call(context, self.core.metadata, request.name, request.version)

    def _infer(self, request, context) -> pb.ModelInferResponse:
        seq = sequence.params_of(request)  # stateful streaming: stc.server.sequence
        if seq is not None:
            if not self.state.accepting.is_set():
                raise unavailable("server is not accepting requests (starting or shutting down)")
            return self.sequences.infer(self.repository, request, seq,
                                        self.core.max_request_bytes)
        return self.core.infer(request, remaining=context.time_remaining(),
                               on_cancel=context.add_callback)

    def ModelInfer(self, request, context):  # noqa: N802
        """OIP ModelInfer (see the module docstring for validation and status codes)."""
        try:
            return self._infer(request, context)
        except ServingError as err:
            context.abort(err.code, err.message)

    # -- Triton extensions ------------------------------------------------------------------
    def ModelConfig(self, request, context):  # noqa: N802
        """Triton ModelConfig: batching, tensor types and dims; NOT_FOUND if unknown."""
        return self._call(context, self.core.config, request.name, request.version)

    def ModelStatistics(self, request, context):  # noqa: N802
        """Triton ModelStatistics of one model or ("" name) of every loaded model."""
        return self._call(context, self.core.statistics, request.name, request.version)

    def RepositoryIndex(self, request, context):  # noqa: N802
        """Triton RepositoryIndex: every bundle with READY / UNAVAILABLE."""
        return self.core.index(request.ready)

    def RepositoryModelLoad(self, request, context):  # noqa: N802
        """Triton RepositoryModelLoad: load every version of a model from disk."""
        self._call(context, self._admin, self.core.load, request.model_name,
                   dict(request.parameters))
        return pb.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request, context):  # noqa: N802
        """Triton RepositoryModelUnload: unload every version of a model."""
        self._call(context, self._admin, self.core.unload, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    def _admin(self, fn, *args):
        if self.read_only:
            raise permission_denied("the server is read-only (--read-only): repository "
                                    "changes are switched off")
        return fn(*args)

    @staticmethod
    def _call(context, fn, *args):
        try:
            return fn(*args)
        except ServingError as err:
            context.abort(err.code, err.message)

    def ModelStreamInfer(self, request_iterator, context):  # noqa: N802
        """Triton's streaming RPC: one response per request, in order; errors go into
        ``error_message`` and the stream continues (stc.server.sequence.stream_responses)."""
        yield from sequence.stream_responses(self, request_iterator, context)
