"""The stc inference server: OIP v2 + stc bundle repository + health + reflection on one port.

``InferenceServer(config, repository).start()`` binds ``host:port`` (port 0 = a free port, see
``.port``), loads every bundle in the repository and marks health SERVING. ``stop()`` shuts down
gracefully: health flips to NOT_SERVING and ServerReady to false, new ModelInfer calls get
UNAVAILABLE, the server waits ``shutdown_delay_s`` (so load balancers notice), then stops
accepting RPCs, lets in-flight calls finish for up to ``grace_s`` seconds, drains every model's
queue and closes the executables.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from stc.proto import inference_pb2, inference_pb2_grpc, stc_repository_pb2, stc_repository_pb2_grpc
from stc.proto._pool import POOL
from stc.server.auth import TokenAuthInterceptor
from stc.server.inference_service import InferenceServicer, ServerState
from stc.server.metrics import ServerMetrics
from stc.server.repository import BACKENDS, Loader, ModelRepository, runtime_loader
from stc.server.repository_service import RepositoryServicer
from stc.server.sequence import SequenceManager

log = logging.getLogger("stc.server")

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
REPOSITORY_SERVICE = stc_repository_pb2.DESCRIPTOR.services_by_name["BundleRepository"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class ServerConfig:
    """Server settings (units in the names: bytes, ms, s).

    Attributes:
        host, port: bind address; port 0 picks a free port.
        backend: "cpu" | "gpu" | "lava-sim" | "loihi" (passed to stc.runtime.load_bundle).
        max_batch, max_delay_ms, queue_size: dynamic batching (cpu/gpu) and queue bound.
        max_workers: gRPC handler threads (concurrent RPCs).
        max_request_bytes: largest ModelInfer input payload; gRPC's receive limit is this
            plus 1 MiB for framing, our own check names the exact limit.
        max_bundle_bytes: largest Upload.
        request_timeout_s: server-side cap on one request.
        shutdown_delay_s: NOT_SERVING period before refusing RPCs; grace_s: drain time.
        tls_cert, tls_key: PEM files enabling TLS; token: enables Bearer-token auth.
        metrics_port: Prometheus HTTP port (None = off).
        numerics: "float" | "fixed" | None (bundle default), passed to load_bundle.
        public_key: Ed25519 public key file; when set every bundle (on disk or uploaded)
            must carry a valid signature, else it is rejected.
        sequence_idle_s, max_sequences: stateful streaming (stc.server.sequence): a
            sequence's state is freed after this idle time (s); at most this many live.
    """

    host: str = "127.0.0.1"
    port: int = 8001
    backend: str = "cpu"
    max_batch: int = 8
    max_delay_ms: float = 2.0
    queue_size: int = 256
    max_workers: int = 32
    max_request_bytes: int = 64 << 20
    max_bundle_bytes: int = 1 << 30
    request_timeout_s: float = 30.0
    shutdown_delay_s: float = 0.0
    grace_s: float = 10.0
    tls_cert: str | None = None
    tls_key: str | None = None
    token: str | None = None
    metrics_port: int | None = None
    numerics: str | None = None
    public_key: str | None = None
    sequence_idle_s: float = 60.0
    max_sequences: int = 1024

    def validate(self) -> ServerConfig:
        """Raise ValueError naming the first bad field; return self."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got "
                             f"{self.backend!r}")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("max_batch", "queue_size", "max_workers", "max_request_bytes",
                     "max_bundle_bytes", "max_sequences"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("request_timeout_s", "grace_s", "sequence_idle_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.numerics not in (None, "float", "fixed"):
            raise ValueError(f"numerics must be 'float', 'fixed' or None; got {self.numerics!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self


def _reflection_pool():
    """stc's private pool plus the health and reflection files (for server reflection)."""
    for desc in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        try:
            POOL.FindFileByName(desc.name)
        except KeyError:
            POOL.AddSerializedFile(desc.serialized_pb)
    return POOL


class InferenceServer:
    """One gRPC server process serving a model repository.

    Args:
        config: ServerConfig.
        repository: a ModelRepository, or a folder (then one is built with ``loader``).
        loader: ``path -> Executable``; default stc.runtime.load_bundle with config.backend,
            config.numerics and config.public_key.
        extra_services: callables ``add(grpc_server) -> service full name`` adding more
            servicers on the same port (the edge agent's ``stc.edge.EdgeAgent``); they get
            reflection and health like the built-in services.

    Raises:
        ValueError: invalid config.
    """

    def __init__(self, config: ServerConfig, repository: ModelRepository | str | Path,
                 loader: Loader | None = None, *, extra_services=()) -> None:
        self.config = config.validate()
        self.extra_services = list(extra_services)
        if isinstance(repository, ModelRepository):
            self.repository = repository
            self.metrics = repository.metrics
        else:
            self.metrics = ServerMetrics()
            loader = loader or runtime_loader(config.backend, config.numerics,
                                              config.public_key)
            self.repository = ModelRepository(
                repository, loader, backend=config.backend, max_batch=config.max_batch,
                max_delay_ms=config.max_delay_ms, queue_size=config.queue_size,
                metrics=self.metrics)
        self.state = ServerState()
        self.repository.inflight = lambda: self.state.inflight
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port: int | None = None
        self._server: grpc.Server | None = None
        self._http = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> int:
        """Load bundles, bind and start serving; returns the bound port.

        Raises:
            RuntimeError: the port cannot be bound.
        """
        cfg = self.config
        interceptors = [TokenAuthInterceptor(cfg.token)] if cfg.token else []
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_workers,
                                       thread_name_prefix="stc-grpc"),
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", cfg.max_request_bytes + (1 << 20)),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)],
        )
        self.sequences = SequenceManager(max_sequences=cfg.max_sequences,
                                         idle_s=cfg.sequence_idle_s)
        inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.repository, self.state, self.metrics,
                              max_request_bytes=cfg.max_request_bytes,
                              request_timeout_s=cfg.request_timeout_s,
                              sequences=self.sequences), server)
        stc_repository_pb2_grpc.add_BundleRepositoryServicer_to_server(
            RepositoryServicer(self.repository, max_bundle_bytes=cfg.max_bundle_bytes), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        extra = [add(server) for add in self.extra_services]
        reflection.enable_server_reflection(
            (INFERENCE_SERVICE, REPOSITORY_SERVICE, HEALTH_SERVICE, *extra,
             reflection.SERVICE_NAME), server, pool=_reflection_pool())
        address = f"{cfg.host}:{cfg.port}"
        if cfg.tls_cert:
            creds = grpc.ssl_server_credentials(
                [(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise RuntimeError(f"cannot bind {address}")
        self.repository.load_all()
        server.start()
        self._server, self.port = server, port
        if cfg.metrics_port is not None:
            self._http = self.metrics.serve_http(cfg.metrics_port)
        for service in ("", INFERENCE_SERVICE, REPOSITORY_SERVICE, *extra):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.state.accepting.set()
        log.info("serving", extra={"event": "start", "address": f"{cfg.host}:{port}",
                                   "backend": cfg.backend, "tls": bool(cfg.tls_cert),
                                   "auth": bool(cfg.token),
                                   "models": [f"{m.name}:{m.version}"
                                              for m in self.repository.loaded()]})
        return port

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown (see module doc); safe to call twice. ``grace`` overrides grace_s."""
        with self._stop_lock:
            if self._stopped.is_set() or self._server is None:
                return
            grace = self.config.grace_s if grace is None else grace
            log.info("shutting down", extra={"event": "shutdown", "grace_s": grace,
                                             "inflight": self.state.inflight})
            self.state.accepting.clear()
            self.health.enter_graceful_shutdown()
            if self.config.shutdown_delay_s > 0:
                time.sleep(self.config.shutdown_delay_s)
            self._server.stop(grace).wait()
            self.sequences.close()
            self.repository.close()
            if self._http is not None:
                self._http.shutdown()
            self._stopped.set()
            log.info("stopped", extra={"event": "stopped"})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop`` finished (True) or ``timeout`` s passed (False)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> InferenceServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
