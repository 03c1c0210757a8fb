"""The ``--engine ray`` branches of ``stc serve`` and ``stc run`` (kept here so the plain
commands stay free of Ray)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    """Return ``engine`` or raise typer.BadParameter naming the allowed values."""
    if engine not in ENGINES:
        raise typer.BadParameter(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


def parse_autoscale(text: str | None) -> tuple[int, int] | None:
    """``"MIN:MAX"`` -> (MIN, MAX); None stays None.

    Raises:
        typer.BadParameter: not two integers separated by ':'.
    """
    if text is None:
        return None
    try:
        lo, hi = (int(p) for p in text.split(":"))
    except ValueError:
        raise typer.BadParameter(f"--autoscale must be MIN:MAX (e.g. 1:4), got {text!r}") \
            from None
    return lo, hi


def serve_with_ray(*, repository: str, port: int, replicas: int, autoscale: str | None,
                   gpus_per_replica: float, device: str | None, numerics: str | None,
                   public_key: str | None, max_batch: int, max_delay_ms: float,
                   queue_size: int, max_request_bytes: int, request_timeout_s: float) -> None:
    """``stc serve --engine ray``: deploy on Ray Serve and block until Ctrl-C.

    Raises:
        typer.Exit(2): Ray missing, a bad setting, or no GPUs for --gpus-per-replica (the
            message says which); nothing is left running.
    """
    from stc.serve_ray import RayNotInstalledError
    from stc.serve_ray.app import RayServeConfig, free_port, serve_repository

    try:
        cfg = RayServeConfig(
            repository=repository, grpc_port=port or free_port(), replicas=replicas,
            autoscale=parse_autoscale(autoscale), gpus_per_replica=gpus_per_replica,
            device=device, numerics=numerics, public_key=public_key, max_batch=max_batch,
            max_delay_ms=max_delay_ms, queue_size=queue_size,
            max_request_bytes=max_request_bytes, request_timeout_s=request_timeout_s)
        cfg.validate()
        typer.secho("warning: Ray Serve's gRPC proxy binds all interfaces and has no token or "
                    "TLS; keep it behind a network boundary you control", fg="yellow", err=True)
        typer.echo(f"serving {repository} on Ray Serve: OIP v2 gRPC on port {cfg.grpc_port}, "
                   f"{'autoscale ' + autoscale if autoscale else f'{replicas} replica(s)'} "
                   "(Ctrl-C stops)", err=True)
        serve_repository(cfg, blocking=True)
    except (RayNotInstalledError, FileNotFoundError, ValueError, RuntimeError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None


def run_with_ray(*, bundle: Path, input: Path, output: Path | None, device: str,
                 numerics: str | None, public_key: Path | None, actors: int,
                 batch_size: int) -> None:
    """``stc run --engine ray``: Ray Data over a .npy file or a folder of them; writes the
    first output (atomically) like the plain ``stc run``.

    Raises:
        typer.Exit(2): Ray missing or bad input (the message says which).
    """
    import numpy as np

    from stc.serve_ray import RayNotInstalledError
    from stc.serve_ray.batch import infer_dataset, load_input

    try:
        x = load_input(input)
        out = infer_dataset(bundle, x, actors=actors, batch_size=batch_size, device=device,
                            numerics=numerics,
                            public_key=str(public_key) if public_key else None)
    except (RayNotInstalledError, FileNotFoundError, ValueError) as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from None
    from stc.bundle import read_bundle

    # the first output, as the plain stc run writes it (the manifest's order; no executable is
    # built here, the actors ran the bundle)
    first = read_bundle(bundle, public_key=public_key).manifest["outputs"][0]["name"]
    y = out[first]
    typer.echo(f"output {first}: shape {list(y.shape)} ({x.shape[0]} rows, {actors} actor(s))")
    if output is not None:
        fd, tmp = tempfile.mkstemp(dir=Path(output).parent, suffix=".npy")
        os.close(fd)
        np.save(tmp, y)
        os.replace(tmp, output)
        typer.echo(f"wrote {output}")
