"""The stc inference server: OIP v2 + stc bundle repository + health + reflection on one port,
plus optionally the OIP REST flavour (``http_port``) and Prometheus metrics (``metrics_port``).

``InferenceServer(config, repository).start()`` binds ``host:port`` (port 0 = a free port, see
``.port``), loads every bundle in the repository and marks health SERVING. ``stop()`` shuts down
gracefully: health flips to NOT_SERVING and ServerReady to false, ModelInfer is still served
for ``shutdown_delay_s`` (so load balancers notice), then new ModelInfer calls get UNAVAILABLE,
the server stops accepting RPCs, lets in-flight calls finish for up to ``grace_s`` seconds,
drains every model's queue and closes the executables.

Exposure: the default host is 127.0.0.1. Serving another address without a token or without
TLS logs a loud warning (``exposure_warnings``). ``read_only`` switches the admin API off (the
bundle repository service is not registered; Triton's load/unload RPCs answer
PERMISSION_DENIED). With a token every RPC needs it except the grpc.health.v1 checks, which stay
open so load balancers can probe; the metrics and REST endpoints need it too (REST exempts
/v2/health/*).

Load shedding: gRPC refuses RPCs beyond ``max_workers + max_pending`` at once with
RESOURCE_EXHAUSTED (``maximum_concurrent_rpcs``), so a flood never queues unboundedly inside
gRPC; uploads are limited to ``max_uploads`` streams (fewer than the handler threads).
"""

from __future__ import annotations

import ipaddress
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
from stc.server.core import InferenceCore, ServerState
from stc.server.inference_service import InferenceServicer
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
        max_pending: RPCs that may wait for a handler thread; beyond ``max_workers +
            max_pending`` RPCs at once gRPC answers RESOURCE_EXHAUSTED (load shedding).
        max_request_bytes: largest ModelInfer input payload; gRPC's receive limit is this
            plus 1 MiB for framing, our own check names the exact limit.
        max_bundle_bytes: largest Upload.
        request_timeout_s: server-side cap on one request.
        shutdown_delay_s: NOT_SERVING period before refusing RPCs; grace_s: drain time.
        tls_cert, tls_key: PEM files enabling TLS; token: enables Bearer-token auth.
        metrics_port: Prometheus HTTP port (None = off), bound on ``host``; needs the token
            when ``token`` is set.
        http_port: OIP REST port (None = off), bound on ``host``; same TLS and token.
        read_only: switch the admin API (upload, delete, load, unload) off.
        max_uploads: most concurrent Upload streams (< max_workers).
        upload_idle_s: an Upload stream idle this long (s) is cancelled.
        upload_timeout_s: longest Upload (s).
        max_request_rows: most rows per request (None = max_batch).
        numerics: "float" | "fixed" | None (bundle default), passed to load_bundle.
        public_key: Ed25519 public key file; when set every bundle (on disk or uploaded)
            must carry a valid signature, else it is rejected.
        sequence_idle_s, max_sequences: stateful streaming (stc.server.sequence): a
            sequence's state is freed after this idle time (s); at most this many live.
        input_policy: "reject" (default: a request outside a bundle's input contract gets
            INVALID_ARGUMENT naming the range) | "preprocess" (apply the contract's declared
            preprocessing to raw input), passed to load_bundle.
        precision: "fp32" | "tf32" | "bf16": GEMM precision of float numerics (stc.precision).
    """

    host: str = "127.0.0.1"
    port: int = 8001
    backend: str = "cpu"
    max_batch: int = 8
    max_delay_ms: float = 2.0
    queue_size: int = 256
    max_workers: int = 32
    max_pending: int = 256
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
    http_port: int | None = None
    read_only: bool = False
    max_uploads: int = 4
    upload_idle_s: float = 10.0
    upload_timeout_s: float = 600.0
    max_request_rows: int | None = None
    sequence_idle_s: float = 60.0
    max_sequences: int = 1024
    input_policy: str = "reject"
    precision: str = "fp32"

    def validate(self) -> ServerConfig:
        """Raise ValueError naming the first bad field; return self."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got "
                             f"{self.backend!r}")
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("max_batch", "queue_size", "max_workers", "max_request_bytes",
                     "max_bundle_bytes", "max_pending", "max_uploads", "max_sequences"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_uploads >= self.max_workers:
            raise ValueError(f"max_uploads ({self.max_uploads}) must be below max_workers "
                             f"({self.max_workers}) so uploads never take every handler thread")
        if self.max_request_rows is not None and int(self.max_request_rows) < 1:
            raise ValueError(f"max_request_rows must be >= 1, got {self.max_request_rows}")
        for name in ("metrics_port", "http_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= int(value) <= 65535:
                raise ValueError(f"{name} must be in 0..65535, got {value}")
        for name in ("request_timeout_s", "grace_s", "upload_idle_s", "upload_timeout_s",
                     "sequence_idle_s"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be > 0 s, got {getattr(self, name)}")
        if self.input_policy not in ("reject", "preprocess"):
            raise ValueError(f"input_policy must be 'reject' or 'preprocess'; got "
                             f"{self.input_policy!r}")
        if self.precision not in ("fp32", "tf32", "bf16"):
            raise ValueError(f"precision must be fp32, tf32 or bf16; got {self.precision!r}")
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


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warnings(config: ServerConfig) -> list[str]:
    """Warnings for a server reachable from other machines without a token or without TLS."""
    if is_loopback(config.host):
        return []
    out = []
    if not config.token:
        admin = "" if config.read_only else " and the admin API (upload, delete, load, unload)"
        out.append(f"serving {config.host} WITHOUT A TOKEN: anyone who can reach this address "
                   f"can run inference{admin}; set --token (or STC_SERVE_TOKEN)"
                   + ("" if config.read_only else " and consider --read-only"))
    if not config.tls_cert:
        out.append(f"serving {config.host} WITHOUT TLS: requests, results and the token travel "
                   "in plain text; set --tls-cert and --tls-key")
    return out


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
                                              config.public_key,
                                              input_policy=config.input_policy,
                                              precision=config.precision)
            self.repository = ModelRepository(
                repository, loader, backend=config.backend, max_batch=config.max_batch,
                max_delay_ms=config.max_delay_ms, queue_size=config.queue_size,
                metrics=self.metrics)
        self.state = ServerState()
        self.core = InferenceCore(self.repository, self.state, self.metrics,
                                  max_request_bytes=config.max_request_bytes,
                                  request_timeout_s=config.request_timeout_s,
                                  max_request_rows=config.max_request_rows or config.max_batch)
        self.repository.inflight = lambda: self.state.inflight
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port: int | None = None
        self.http_port: int | None = None
        self.metrics_port: int | None = None
        self._server: grpc.Server | None = None
        self._http = None
        self._rest = None
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
            maximum_concurrent_rpcs=cfg.max_workers + cfg.max_pending,
            options=[("grpc.max_receive_message_length", cfg.max_request_bytes + (1 << 20)),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)],
        )
        self.sequences = SequenceManager(max_sequences=cfg.max_sequences,
                                         idle_s=cfg.sequence_idle_s)
        inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self.repository, self.state, self.metrics,
                              read_only=cfg.read_only, core=self.core,
                              sequences=self.sequences), server)
        services = [INFERENCE_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME]
        if not cfg.read_only:
            stc_repository_pb2_grpc.add_BundleRepositoryServicer_to_server(
                RepositoryServicer(self.repository, max_bundle_bytes=cfg.max_bundle_bytes,
                                   max_uploads=cfg.max_uploads,
                                   upload_idle_s=cfg.upload_idle_s,
                                   upload_timeout_s=cfg.upload_timeout_s), server)
            services.append(REPOSITORY_SERVICE)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        extra = [add(server) for add in self.extra_services]
        reflection.enable_server_reflection(tuple(services + extra), server,
                                            pool=_reflection_pool())
        address = f"{cfg.host}:{cfg.port}"
        if cfg.tls_cert:
            creds = grpc.ssl_server_credentials(
                [(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise RuntimeError(f"cannot bind {address}")
        for warning in exposure_warnings(cfg):
            log.warning(warning, extra={"event": "exposure_warning"})
        self.repository.load_all()
        server.start()
        self._server, self.port = server, port
        if cfg.metrics_port is not None:
            self._http = self.metrics.serve_http(cfg.metrics_port, cfg.host, cfg.token)
            self.metrics_port = self._http.server_port
        if cfg.http_port is not None:
            from stc.server.rest import RestServer

            self._rest = RestServer(self.core, host=cfg.host, port=cfg.http_port,
                                    token=cfg.token, read_only=cfg.read_only,
                                    tls_cert=cfg.tls_cert, tls_key=cfg.tls_key,
                                    max_body_bytes=cfg.max_request_bytes + (1 << 20),
                                    max_concurrency=cfg.max_workers + cfg.max_pending)
            self.http_port = self._rest.start()
        for service in ("", INFERENCE_SERVICE, *extra) + (
                () if cfg.read_only else (REPOSITORY_SERVICE,)):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self.state.ready.set()
        self.state.accepting.set()
        log.info("serving", extra={"event": "start", "address": f"{cfg.host}:{port}",
                                   "http_port": self.http_port,
                                   "metrics_port": self.metrics_port,
                                   "read_only": cfg.read_only,
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
            self.state.ready.clear()
            self.health.enter_graceful_shutdown()
            if self.config.shutdown_delay_s > 0:  # still serving: load balancers notice
                time.sleep(self.config.shutdown_delay_s)
            self.state.accepting.clear()
            if self._rest is not None:
                self._rest.stop(grace)
            self._server.stop(grace).wait()
            self.sequences.close()
            self.repository.close()
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()
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
