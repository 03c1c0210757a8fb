"""``stc edge``: the node agent (``stc edge agent --store DIR``) and a local hardware probe
(``stc edge probe``). See stc.edge.agent for activation, rollback and crash recovery.

Exit codes: 0 success, 2 bad usage or bad input (missing key/TLS file, unusable store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options

app = typer.Typer(help="Edge nodes: the node agent and the hardware probe.",
                  no_args_is_help=True, add_completion=False)


@app.command("agent")
def agent(
    store: str = typer.Option(..., "--store", help="the node's bundle store folder"),
    port: int = typer.Option(8001, "--port", help="gRPC port (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address"),
    public_key: str = typer.Option(None, "--public-key",
                                   help="Ed25519 public key: refuse bundles not signed with it"),
    token: str = typer.Option(None, "--token", envvar="STC_EDGE_TOKEN",
                              help="require 'authorization: Bearer <token>' on every RPC"),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate (enables TLS)"),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key"),
    device: Annotated[str | None, options.device(default_note="loihi > gpu > cpu")] = None,
    sequence_idle_s: float = typer.Option(60.0, "--sequence-idle-s",
                                          help="free a stream's state after this idle time"),
    max_sequences: int = typer.Option(1024, "--max-sequences",
                                      help="most live streaming sequences"),
) -> None:
    """Run the OIP server (the same as stc serve) plus the edge service over STORE; prints
    ``listening on HOST:PORT`` on stderr once serving."""
    import signal
    import threading

    from stc.edge.agent import EdgeAgent
    from stc.edge.probe import normalize_device
    from stc.edge.store import StoreError
    from stc.server.logs import configure_json_logging

    for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key),
                       ("--public-key", public_key)):
        if path is not None and not Path(path).is_file():
            typer.echo(f"error: {flag} {path} is not a file", err=True)
            raise typer.Exit(2)
    try:
        normalize_device(device)
        a = EdgeAgent(store, host=host, port=port, public_key=public_key, token=token,
                      tls_cert=tls_cert, tls_key=tls_key, device=device,
                      sequence_idle_s=sequence_idle_s, max_sequences=max_sequences)
    except (StoreError, ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    configure_json_logging()
    bound = a.start()
    typer.echo(f"stc edge agent: listening on {host}:{bound} ({a.hardware.summary()})", err=True)
    for line in a.recovery:
        typer.echo(f"stc edge agent: {line}", err=True)

    def _shutdown(signum, frame):
        threading.Thread(target=a.stop, name="stc-shutdown", daemon=True).start()

    signal.signal(signal.SIGINT, _shutdown)
    signal.signal(signal.SIGTERM, _shutdown)
    while not a.server.wait(0.5):
        pass


@app.command("probe")
def probe_cmd(json_out: bool = typer.Option(False, "--json", help="machine-readable output")
              ) -> None:
    """Probe this machine's hardware (CPU, CUDA GPUs, Lava simulator, Loihi 2)."""
    import json

    from stc.edge.probe import choose_backend, probe

    try:
        hw = probe()
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    backend, reason = choose_backend(hw, has_fixed=True)
    if json_out:
        typer.echo(json.dumps({**hw.to_dict(), "devices": hw.devices(),
                               "backend_for_fixed_bundle": backend, "reason": reason}))
        return
    typer.echo(f"{hw.hostname}: {hw.summary()}")
    typer.echo(f"gpu: {hw.gpu_detail}")
    typer.echo(f"lava-sim: {hw.lava_sim.detail}")
    typer.echo(f"loihi: {hw.loihi.detail}")
    typer.echo(f"a bundle with a fixed graph would run on {backend}: {reason}")
