"""``stc export BUNDLE_OR_MODEL -o model.nir [--dt 1e-4]``: write a graph as NIR
(stc.ir.nir_export). BUNDLE_OR_MODEL is a ``.stcb`` bundle (its float graph) or anything
``stc bundle`` takes (checkpoint directory, ``.nir``, ``module:factory`` with
``--input-shape``); ``-T`` sets the encoder's T for models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .bundle import cli_errors


def export(
    model: Annotated[str, typer.Argument(help="a .stcb bundle, checkpoint dir, .nir or "
                                              "module:factory")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the .nir file to write")],
    dt: Annotated[float, typer.Option(help="seconds per stc timestep written into the NIR "
                                           "graph (snnTorch's importer uses 1e-4)")] = 1e-4,
    input_shape: Annotated[str | None, typer.Option(
        help="per-sample shape for module:factory, e.g. 1,8,8")] = None,
    timesteps: Annotated[int, typer.Option("--timesteps", "-T", min=1,
                                           help="T of the direct encoder")] = 4,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="Ed25519 public key (PEM) to verify a bundle with")] = None,
) -> None:
    """Write MODEL's float graph as a NIR file whose dynamics at --dt equal stc's."""
    with cli_errors(check_code=1):
        from stc.ir.nir_export import write_nir

        if model.endswith(".stcb"):
            from stc.bundle import read_bundle

            graph = read_bundle(model, public_key=public_key).graph
        else:
            from stc.compiler import SpikeCompiler

            from .bundle import load_model_source

            src, shape, _ = load_model_source(model, input_shape, None if not
                                              model.endswith(".nir") else dt)
            graph = SpikeCompiler("cpu", 2, timesteps).compile(src, shape, dt=dt).graph
        path = write_nir(graph, output, dt=dt)
        typer.echo(f"wrote {path} (NIR, dt={dt:g} s per step)")
