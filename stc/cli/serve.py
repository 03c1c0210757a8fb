"""``stc serve``: run the OIP v2 gRPC inference server over a bundle repository.

Repository layout: ``<DIR>/<model>/<version>/model.stcb`` (see stc.server.repository). Logs are
JSON lines on stderr. SIGINT/SIGTERM shut down gracefully (health NOT_SERVING, drain). Exit code
2 on bad usage (unknown backend, missing TLS file, ...).
"""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    repository: str = typer.Option(..., "--repository", help="bundle repository folder"),
    port: int = typer.Option(8001, "--port", help="gRPC port (0 = any free port)"),
    host: str = typer.Option("0.0.0.0", "--host", help="bind address"),  # noqa: S104
    backend: str = typer.Option("cpu", "--backend", help="gpu | cpu | lava-sim | loihi"),
    metrics_port: int = typer.Option(None, "--metrics-port",
                                     help="Prometheus /metrics HTTP port (off if not given)"),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate (enables TLS)"),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key"),
    token: str = typer.Option(None, "--token", envvar="STC_SERVE_TOKEN",
                              help="require 'authorization: Bearer <token>' metadata"),
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
    numerics: str = typer.Option(None, "--numerics",
                                 help="float | fixed (default: each bundle's own)"),
    public_key: str = typer.Option(None, "--public-key",
                                   help="Ed25519 public key: accept only bundles signed with it"),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32 | tf32 | bf16: GEMM precision of float numerics"),
) -> None:
    """Serve every bundle under REPOSITORY over gRPC (Open Inference Protocol v2: works with
    tritonclient.grpc) plus stc's bundle-upload service, health checking and reflection."""
    import signal
    import threading

    from stc.server.app import InferenceServer, ServerConfig
    from stc.server.logs import configure_json_logging

    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key),
                       ("--public-key", public_key)):
        if path is not None and not Path(path).is_file():
            raise typer.BadParameter(f"{flag} {path} is not a file")
    try:
        cfg = ServerConfig(
            host=host, port=port, backend=backend, max_batch=max_batch,
            max_delay_ms=max_delay_ms, queue_size=queue_size,
            max_request_bytes=int(max_request_mb * (1 << 20)),
            request_timeout_s=request_timeout_s, grace_s=grace_s,
            shutdown_delay_s=shutdown_delay_s,
            tls_cert=tls_cert, tls_key=tls_key, token=token,
            metrics_port=metrics_port, numerics=numerics, public_key=public_key).validate()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    from stc.precision import PRECISIONS

    if precision not in PRECISIONS:
        raise typer.BadParameter(f"--precision must be one of {', '.join(PRECISIONS)}; "
                                 f"got {precision!r}")
    loader = None
    if precision != "fp32":  # the default loader (server.repository) has no precision
        def loader(path, _b=backend, _n=numerics, _k=public_key, _p=precision):
            from stc.runtime import load_bundle

            return load_bundle(path, backend=_b, numerics=_n, public_key=_k, precision=_p)
    configure_json_logging()
    server = InferenceServer(cfg, repository, loader=loader)
    bound = server.start()
    typer.echo(f"stc serve: listening on {host}:{bound} (backend {backend})", err=True)

    def _shutdown(signum, frame):
        threading.Thread(target=server.stop, name="stc-shutdown", daemon=True).start()

    signal.signal(signal.SIGINT, _shutdown)
    signal.signal(signal.SIGTERM, _shutdown)
    while not server.wait(0.5):
        pass
