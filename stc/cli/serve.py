"""``stc serve``: run the OIP v2 inference server (gRPC, and REST with ``--http-port``) over a
bundle repository.

Repository layout: ``<DIR>/<model>/<version>/model.stcb`` (see stc.server.repository). Logs are
JSON lines on stderr. SIGINT/SIGTERM shut down gracefully (health NOT_SERVING, drain). Exit code
2 on bad usage (unknown backend, missing TLS file, ...).

Safe defaults: binds 127.0.0.1 unless ``--host`` says otherwise; metrics and REST bind the same
host; with ``--token`` every call (gRPC, REST, /metrics) needs it except health checks; a
non-loopback host without a token or without TLS prints a loud warning; ``--read-only`` turns
the admin API (upload, delete, load, unload) off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options


def serve(
    repository: str = typer.Option(..., "--repository", help="bundle repository folder"),
    port: int = typer.Option(8001, "--port", help="gRPC port (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="bind address (gRPC, REST and metrics); 0.0.0.0 exposes the "
                                  "server to the network: set --token and TLS then"),
    device: Annotated[str | None, options.device(default_note="cpu")] = None,
    metrics_port: int = typer.Option(None, "--metrics-port",
                                     help="Prometheus /metrics HTTP port on --host (off if not "
                                          "given; needs the token when --token is set)"),
    http_port: int = typer.Option(None, "--http-port",
                                  help="OIP REST (KServe v2 HTTP) port on --host (off if not "
                                       "given)"),
    read_only: bool = typer.Option(False, "--read-only",
                                   help="switch the admin API off (no upload, delete, load, "
                                        "unload)"),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate (enables TLS)"),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key"),
    token: str = typer.Option(None, "--token", envvar="STC_SERVE_TOKEN",
                              help="require 'authorization: Bearer <token>' on every call "
                                   "(gRPC metadata, REST and /metrics headers); health checks "
                                   "(grpc.health.v1, /v2/health/*) stay open for load "
                                   "balancers"),
    max_batch: int = typer.Option(8, "--max-batch", help="dynamic batching: rows per batch"),
    max_delay_ms: float = typer.Option(2.0, "--max-delay-ms",
                                       help="dynamic batching: wait for more requests (ms)"),
    queue_size: int = typer.Option(256, "--queue-size", help="waiting requests per model"),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb",
                                         help="largest request payload (MiB)"),
    request_timeout_s: float = typer.Option(30.0, "--request-timeout-s",
                                            help="server-side cap per request (s)"),
    grace_s: float = typer.Option(10.0, "--grace-s", help="drain time on shutdown (s)"),
    shutdown_delay_s: float = typer.Option(0.0, "--shutdown-delay-s",
                                           help="NOT_SERVING period before refusing RPCs (s)"),
    numerics: Annotated[str | None, options.numerics(
        "float | fixed (default: each bundle's own)")] = None,
    public_key: str = typer.Option(None, "--public-key",
                                   help="Ed25519 public key: accept only bundles signed with it"),
    engine: str = typer.Option("local", "--engine",
                               help="local | ray (Ray Serve replicas behind Ray's gRPC proxy)"),
    replicas: int = typer.Option(1, "--replicas", help="with --engine ray: replica count"),
    autoscale: str = typer.Option(None, "--autoscale",
                                  help="with --engine ray: MIN:MAX replicas (autoscaling)"),
    gpus_per_replica: float = typer.Option(0.0, "--gpus-per-replica",
                                           help="with --engine ray: GPUs per replica"),
    backend: Annotated[str | None, options.deprecated("--backend", "--device")] = None,
    input_policy: str = typer.Option(
        "reject", "--input-policy", help="reject (default: a request outside a bundle's "
        "input contract gets INVALID_ARGUMENT naming the range) | preprocess (apply the "
        "contract's declared preprocessing to raw input)"),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32 | tf32 | bf16: GEMM precision of float numerics"),
) -> None:
    """Serve every bundle under REPOSITORY over gRPC (Open Inference Protocol v2: works with
    tritonclient.grpc) and, with --http-port, REST (tritonclient.http, curl), plus stc's
    bundle-upload service, health checking and reflection."""
    import signal
    import threading

    from stc.server.app import InferenceServer, ServerConfig
    from stc.server.logs import configure_json_logging

    device = options.DEVICE_ALIASES.get(backend, backend) or device or "cpu"
    from stc.serve_ray.cli import check_engine, serve_with_ray

    if check_engine(engine) == "ray":
        return serve_with_ray(
            repository=repository, port=port, replicas=replicas, autoscale=autoscale,
            gpus_per_replica=gpus_per_replica, device=device, numerics=numerics,
            public_key=public_key, max_batch=max_batch, max_delay_ms=max_delay_ms,
            queue_size=queue_size, max_request_bytes=int(max_request_mb * (1 << 20)),
            request_timeout_s=request_timeout_s)

    if not Path(repository).is_dir():
        raise typer.BadParameter(f"--repository {repository} is not a folder; create it (or "
                                 "fix the path): <dir>/<model>/<version>/model.stcb")
    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key),
                       ("--public-key", public_key)):
        if path is not None and not Path(path).is_file():
            raise typer.BadParameter(f"{flag} {path} is not a file")
    try:
        cfg = ServerConfig(
            host=host, port=port, backend=device, max_batch=max_batch,
            max_delay_ms=max_delay_ms, queue_size=queue_size,
            max_request_bytes=int(max_request_mb * (1 << 20)),
            request_timeout_s=request_timeout_s, grace_s=grace_s,
            shutdown_delay_s=shutdown_delay_s,
            tls_cert=tls_cert, tls_key=tls_key, token=token,
            metrics_port=metrics_port, numerics=numerics, public_key=public_key,
            http_port=http_port, read_only=read_only, input_policy=input_policy,
            precision=precision).validate()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    from stc.server.app import exposure_warnings

    configure_json_logging()
    for warning in exposure_warnings(cfg):
        typer.secho(f"WARNING: {warning}", err=True, fg="red", bold=True)
    server = InferenceServer(cfg, repository)
    for entry in server.repository.skipped():
        typer.secho(f"WARNING: ignored {entry}", err=True, fg="yellow")
    bound = server.start()
    typer.echo(f"stc serve: listening on {host}:{bound} (device {device})", err=True)
    if server.http_port is not None:
        typer.echo(f"stc serve: REST on http{'s' if tls_cert else ''}://{host}:"
                   f"{server.http_port}/v2", err=True)
    if server.metrics_port is not None:
        typer.echo(f"stc serve: metrics on http://{host}:{server.metrics_port}/metrics",
                   err=True)

    def _shutdown(signum, frame):
        threading.Thread(target=server.stop, name="stc-shutdown", daemon=True).start()

    signal.signal(signal.SIGINT, _shutdown)
    signal.signal(signal.SIGTERM, _shutdown)
    while not server.wait(0.5):
        pass
