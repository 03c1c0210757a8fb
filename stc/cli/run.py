"""``stc run model.stcb --input x.npy [--output y.npy]``: run a bundle on a batch.

A bundle with several inputs takes an ``.npz`` (one array per input name); with several
outputs, ``--output`` gets an ``.npz`` of all of them (one array per output name)."""

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
) -> None:
    """Verify BUNDLE, run it on INPUT and print the output shape, argmax and firing rates."""
    with cli_errors(check_code=1):
        import numpy as np

        from stc.runtime import load_bundle

        if not input.is_file():
            raise FileNotFoundError(f"input file not found: {input}")
        x = np.load(input, allow_pickle=False)
        exe = load_bundle(bundle, backend=backend, numerics=numerics, public_key=key)
    with cli_errors(check_code=2):
        try:
            names = [i.name for i in exe.inputs]
            if isinstance(x, np.lib.npyio.NpzFile):  # several inputs: an .npz by input name
                feeds = {k: x[k] for k in x.files}
                if sorted(feeds) != sorted(names):
                    raise ValueError(f"{input} holds arrays {sorted(feeds)}; the bundle's "
                                     f"inputs are {names}")
            elif len(names) > 1:
                raise ValueError(f"the bundle has {len(names)} inputs {names}; pass an .npz "
                                 "with one array per input name (np.savez)")
            else:
                feeds = {names[0]: x}
            out = exe.infer(feeds)
            stats = getattr(exe, "last_result", None)
        finally:
            exe.close()
        for spec in exe.outputs:
            y = out[spec.name]
            typer.echo(f"output {spec.name}: shape {list(y.shape)}")
            if y.ndim == 2:
                typer.echo("argmax: " + " ".join(str(int(i)) for i in y.argmax(-1)))
        if stats is not None:
            for n, r in stats.firing_rates.items():
                typer.echo(f"firing rate {n}: {r:.4f}")
        if output is not None:
            if len(exe.outputs) > 1:  # several outputs: an .npz by output name
                with open(output, "wb") as fh:
                    np.savez(fh, **{s.name: out[s.name] for s in exe.outputs})
            else:
                np.save(output, out[exe.outputs[0].name])
            typer.echo(f"wrote {output}")
