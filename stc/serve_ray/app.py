"""A bundle repository served by Ray Serve, speaking OIP v2 through Ray's gRPC proxy.

Each replica is an ordinary stc server core without its own gRPC port: it builds the same
:class:`stc.server.repository.ModelRepository` (dynamic batcher included) and the same
:class:`stc.server.inference_service.InferenceServicer` that ``stc serve`` uses, and exposes every
unary RPC of ``inference.GRPCInferenceService`` as a deployment method of the same name. Ray
Serve's gRPC proxy is started with the generated
``add_GRPCInferenceServiceServicer_to_server``, so ``tritonclient.grpc`` talks to the Ray
endpoint unchanged: with one application Ray routes requests that carry no ``application``
metadata to it (ray.serve._private.proxy_router.ProxyRouter.get_handle_for_endpoint).

Batching stays inside a replica, in stc's batcher (one implementation); Ray spreads requests
over replicas and restarts a replica whose process dies. Health (ServerLive/ServerReady) and
metadata answer for the whole application: any replica answers for all, since every replica
loads the same repository.

Limits (Ray's, not stc's): Ray's gRPC proxy binds all interfaces (``[::]:port``) and has no
token or TLS hook, so put it behind a network boundary you control; streaming RPCs
(ModelStreamInfer) and stc's bundle-upload service are not exposed through Ray (upload to the
shared repository folder and redeploy instead).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from stc.serve_ray import require_ray

log = logging.getLogger("stc.serve_ray")

SERVICER_FUNCTION = "stc.proto.inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
APP_NAME = "stc"


@dataclass
class RayServeConfig:
    """Settings of a Ray Serve deployment of a bundle repository (units in the names).

    Attributes:
        repository: bundle repository folder (``<dir>/<model>/<version>/model.stcb``); must
            exist and be readable from every Ray node (a shared or copied folder).
        grpc_port: Ray's gRPC proxy port (OIP v2).
        replicas: fixed replica count (>= 1); ignored when ``autoscale`` is given.
        autoscale: ``(min_replicas, max_replicas)`` for Ray Serve's autoscaler, or None.
        gpus_per_replica: GPUs each replica reserves (fractions share a GPU); > 0 needs GPUs
            in the Ray cluster and implies ``device="gpu"`` unless a device is given.
        device: "cpu" | "gpu" | "lava-sim" | "loihi" (stc.runtime.load_bundle).
        numerics, public_key, max_batch, max_delay_ms, queue_size, max_request_bytes,
        request_timeout_s: as in :class:`stc.server.app.ServerConfig`.
        max_ongoing_requests: concurrent requests Ray sends one replica (its batcher merges
            them).
    """

    repository: str
    grpc_port: int = 9000
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    gpus_per_replica: float = 0.0
    device: str | None = None
    numerics: str | None = None
    public_key: str | None = None
    max_batch: int = 8
    max_delay_ms: float = 2.0
    queue_size: int = 256
    max_request_bytes: int = 64 << 20
    request_timeout_s: float = 30.0
    max_ongoing_requests: int = 64

    @property
    def resolved_device(self) -> str:
        """The stc device: the given one, else "gpu" when GPUs are reserved, else "cpu"."""
        if self.device is not None:
            return self.device
        return "gpu" if self.gpus_per_replica > 0 else "cpu"

    def validate(self) -> RayServeConfig:
        """Check every field before anything starts.

        Raises:
            FileNotFoundError: the repository folder does not exist.
            ValueError: a count, port or device outside its range (the message names it).
        """
        root = Path(self.repository)
        if not root.is_dir():
            raise FileNotFoundError(f"repository {self.repository} is not a folder; expected "
                                    "<dir>/<model>/<version>/model.stcb")
        if int(self.replicas) < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.autoscale is not None:
            lo, hi = self.autoscale
            if not 1 <= int(lo) <= int(hi):
                raise ValueError(f"autoscale must be MIN:MAX with 1 <= MIN <= MAX, got "
                                 f"{lo}:{hi}")
        if float(self.gpus_per_replica) < 0:
            raise ValueError(f"gpus_per_replica must be >= 0, got {self.gpus_per_replica}")
        if not 1 <= int(self.grpc_port) <= 65535:
            raise ValueError(f"grpc_port must be in 1..65535, got {self.grpc_port}")
        if int(self.max_ongoing_requests) < 1:
            raise ValueError(f"max_ongoing_requests must be >= 1, got "
                             f"{self.max_ongoing_requests}")
        self.server_config()  # the server core's own checks (device, numerics, limits)
        return self

    def server_config(self):
        """The :class:`stc.server.app.ServerConfig` each replica's server core uses."""
        from stc.server.app import ServerConfig

        return ServerConfig(
            backend=self.resolved_device, numerics=self.numerics, public_key=self.public_key,
            max_batch=self.max_batch, max_delay_ms=self.max_delay_ms,
            queue_size=self.queue_size, max_request_bytes=self.max_request_bytes,
            request_timeout_s=self.request_timeout_s).validate()


class _Aborted(Exception):
    """Raised after a servicer called ``context.abort``; Ray returns the code set on the
    gRPC context (ray.serve._private.replica: user exceptions keep a status code set before
    they are raised)."""


class _ContextAdapter:
    """The part of ``grpc.ServicerContext`` stc's servicer uses, over Ray's gRPC context.

    ``abort`` sets the status on Ray's context and raises; ``time_remaining`` is unknown
    through Ray's proxy (None: the server's own ``request_timeout_s`` caps the request);
    ``add_callback`` is not supported (returns False, as grpc does when it cannot register).
    """

    def __init__(self, ray_context) -> None:
        self._ray = ray_context

    def abort(self, code, details):
        if self._ray is not None:
            self._ray.set_code(code)
            self._ray.set_details(details)
        raise _Aborted(f"{code.name}: {details}")

    def time_remaining(self):
        return None

    def add_callback(self, callback) -> bool:
        return False

    def is_active(self) -> bool:
        return True

    def invocation_metadata(self):
        return self._ray.invocation_metadata() if self._ray is not None else ()

    def __getattr__(self, name):
        if self._ray is None:
            raise AttributeError(name)
        return getattr(self._ray, name)


def _unary_methods() -> list[str]:
    """Names of the unary-unary RPCs of inference.GRPCInferenceService."""
    from stc.proto import inference_pb2

    service = inference_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    return [m.name for m in service.methods if not (m.client_streaming or m.server_streaming)]


class OIPReplica:
    """One Ray Serve replica: stc's repository, batcher and OIP servicer, no own port.

    Args:
        config: ``asdict(RayServeConfig)`` (plain data, so Ray can ship it to the replica).
    """

    def __init__(self, config: dict) -> None:
        from stc.server.inference_service import InferenceServicer, ServerState
        from stc.server.metrics import ServerMetrics
        from stc.server.repository import ModelRepository, runtime_loader

        cfg = RayServeConfig(**config)
        server_cfg = cfg.server_config()
        self.metrics = ServerMetrics()
        self.repository = ModelRepository(
            cfg.repository,
            runtime_loader(server_cfg.backend, server_cfg.numerics, server_cfg.public_key,
                           input_policy=server_cfg.input_policy,
                           precision=server_cfg.precision),
            backend=server_cfg.backend, max_batch=server_cfg.max_batch,
            max_delay_ms=server_cfg.max_delay_ms, queue_size=server_cfg.queue_size,
            metrics=self.metrics)
        self.state = ServerState()
        self.repository.inflight = lambda: self.state.inflight
        self.servicer = InferenceServicer(
            self.repository, self.state, self.metrics,
            max_request_bytes=server_cfg.max_request_bytes,
            request_timeout_s=server_cfg.request_timeout_s)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=cfg.max_ongoing_requests, thread_name_prefix="stc-ray")
        self.repository.load_all()
        self.state.ready.set()
        self.state.accepting.set()
        log.info("replica ready", extra={"event": "replica", "pid": os.getpid(),
                                         "models": [f"{m.name}:{m.version}"
                                                    for m in self.repository.loaded()]})

    def _call(self, method: str, request, grpc_context):
        return getattr(self.servicer, method)(request, _ContextAdapter(grpc_context))

    def pid(self) -> int:
        """The replica's process id (operators and tests use it to find a replica)."""
        return os.getpid()

    def check_health(self) -> None:
        """Ray Serve's health check: fails while the replica does not accept requests."""
        if not (self.state.ready.is_set() and self.state.accepting.is_set()):
            raise RuntimeError("replica is not accepting requests")

    def __del__(self) -> None:
        try:
            self.state.ready.clear()
            self.state.accepting.clear()
            self.repository.close()
            self._pool.shutdown(wait=False)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


def _make_rpc(name: str):
    async def rpc(self, request, grpc_context=None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, name, request, grpc_context)

    rpc.__name__ = rpc.__qualname__ = name
    rpc.__doc__ = f"OIP v2 {name}, answered by stc's InferenceServicer."
    return rpc


for _name in _unary_methods():
    setattr(OIPReplica, _name, _make_rpc(_name))


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (for tests and ``--port 0``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_application(config: RayServeConfig):
    """The Ray Serve application (bound deployment) for ``config``.

    Raises:
        RayNotInstalledError: Ray is not installed.
    """
    require_ray()
    from ray import serve

    options: dict = {"name": "OIPReplica", "max_ongoing_requests": config.max_ongoing_requests,
                     "ray_actor_options": {"num_gpus": float(config.gpus_per_replica),
                                           "num_cpus": 0.5}}
    if config.autoscale is not None:
        lo, hi = config.autoscale
        options["autoscaling_config"] = {"min_replicas": int(lo), "max_replicas": int(hi),
                                         "initial_replicas": int(lo),
                                         "target_ongoing_requests": 8}
    else:
        options["num_replicas"] = int(config.replicas)
    cfg = asdict(config)
    cfg["repository"] = str(Path(config.repository).resolve())
    return serve.deployment(OIPReplica).options(**options).bind(cfg)


def serve_repository(config: RayServeConfig, *, address: str | None = None,
                     blocking: bool = False) -> int:
    """Deploy ``config.repository`` on Ray Serve; returns the gRPC port.

    Connects to the Ray cluster at ``address`` (None: ``RAY_ADDRESS`` or a new local cluster),
    starts Serve's gRPC proxy with stc's OIP servicer and deploys ``config.replicas`` replicas
    (or the autoscaling range). With ``blocking`` it waits until interrupted, then shuts Serve
    down. On any error what was started here is shut down again.

    Raises:
        RayNotInstalledError: Ray is not installed.
        FileNotFoundError / ValueError: see :meth:`RayServeConfig.validate`.
        RuntimeError: GPUs were requested and the cluster has none; the deployment failed.
    """
    config.validate()
    ray = require_ray()
    from ray import serve

    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        if config.gpus_per_replica > 0:
            gpus = ray.cluster_resources().get("GPU", 0)
            need = config.gpus_per_replica * (config.autoscale[0] if config.autoscale
                                              else config.replicas)
            if gpus < need:
                raise RuntimeError(f"--gpus-per-replica {config.gpus_per_replica} needs "
                                   f"{need:g} GPU(s) but the Ray cluster has {gpus:g}")
        serve.start(grpc_options={"port": int(config.grpc_port),
                                  "grpc_servicer_functions": [SERVICER_FUNCTION]},
                    http_options={"host": "127.0.0.1", "port": free_port()})
        serve.run(build_application(config), name=APP_NAME, route_prefix="/",
                  blocking=False)
    except BaseException:
        shutdown(started_ray)
        raise
    if blocking:
        import threading

        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            shutdown(started_ray)
    return int(config.grpc_port)


def shutdown(stop_ray: bool = True) -> None:
    """Shut Serve down (and the Ray connection when ``stop_ray``); safe to call twice."""
    ray = require_ray()
    from ray import serve

    if ray.is_initialized():
        try:
            serve.shutdown()
        finally:
            if stop_ray:
                ray.shutdown()
