"""``stc run model.stcb --input x.npy [--output y.npy]``: run a bundle on a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .bundle import cli_errors


def run(
    bundle: Annotated[Path, typer.Argument(help="the .stcb file")],
    input: Annotated[Path, typer.Option("--input", "-i", help=".npy batch-first input")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help=".npy to write")] = None,
    backend: Annotated[str, typer.Option(help="cpu | gpu | lava-sim | loihi")] = "cpu",
    numerics: Annotated[str | None, typer.Option(help="float | fixed (default: bundle's)")]
    = None,
    key: Annotated[Path | None, typer.Option(help="Ed25519 public key (PEM)")] = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32 | tf32 | bf16: GEMM precision of float numerics")] = "fp32",
) -> None:
    """Verify BUNDLE, run it on INPUT and print the output shape, argmax and firing rates."""
    with cli_errors(check_code=1):
        import numpy as np

        from stc.runtime import load_bundle

        if not input.is_file():
            raise FileNotFoundError(f"input file not found: {input}")
        x = np.load(input, allow_pickle=False)
        exe = load_bundle(bundle, backend=backend, numerics=numerics, public_key=key,
                          precision=precision)
    with cli_errors(check_code=2):
        try:
            out = exe.infer({exe.inputs[0].name: x})
            stats = getattr(exe, "last_result", None)
        finally:
            exe.close()
        y = out[exe.outputs[0].name]
        typer.echo(f"output {exe.outputs[0].name}: shape {list(y.shape)}")
        if y.ndim == 2:
            typer.echo("argmax: " + " ".join(str(int(i)) for i in y.argmax(-1)))
        if stats is not None:
            for n, r in stats.firing_rates.items():
                typer.echo(f"firing rate {n}: {r:.4f}")
        if output is not None:
            np.save(output, y)
            typer.echo(f"wrote {output}")
