"""``stc run model.stcb --input x.npy [--output y.npy]``: run a bundle on a batch.

A bundle with several inputs takes an ``.npz`` (one array per input name); with several
outputs, ``--output`` gets an ``.npz`` of all of them (one array per output name)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options
from .bundle import cli_errors


def run(
    bundle: Annotated[Path, typer.Argument(help="the .stcb file")],
    input: Annotated[Path, typer.Option("--input", "-i", help=".npy batch-first input")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help=".npy to write")] = None,
    device: Annotated[str | None, options.device(default_note="cpu")] = None,
    numerics: Annotated[str | None, options.numerics("float | fixed (default: the bundle's)")]
    = None,
    public_key: options.PublicKey = None,
    backend: Annotated[str | None, options.backend(legacy_device=True)] = None,
    key: Annotated[Path | None, options.deprecated("--key", "--public-key")] = None,
    engine: Annotated[str, typer.Option(help="local | ray (Ray Data batch inference over a "
                                               ".npy file or a folder of them)")] = "local",
    actors: Annotated[int, typer.Option(help="with --engine ray: Ray actors")] = 2,
    batch_size: Annotated[int, typer.Option(help="with --engine ray: rows per batch")] = 256,
    input_policy: Annotated[str, typer.Option(
        "--input-policy", help="reject (default: input outside the bundle's input contract "
        "is an error naming the range) | preprocess (apply the contract's declared "
        "preprocessing to raw input first)")] = "reject",
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32 | tf32 | bf16: GEMM precision of float numerics")] = "fp32",
) -> None:
    """Verify BUNDLE, run it on INPUT and print the output shape, argmax and firing rates.
    The input is held against the bundle's input contract (``stc inspect`` shows it); fixed
    numerics on every backend take the float model's input (quantised at the boundary)."""
    device, backend = options.split_backend(device, backend, default_device="cpu")
    key = options.pick(public_key, key)
    from stc.serve_ray.cli import check_engine, run_with_ray

    if check_engine(engine) == "ray":
        return run_with_ray(bundle=bundle, input=input, output=output, device=device,
                            numerics=numerics, public_key=key, actors=actors,
                            batch_size=batch_size)
    with cli_errors(check_code=1):
        import numpy as np

        from stc.runtime import load_bundle

        if not input.is_file():
            raise FileNotFoundError(f"input file not found: {input}")
        x = np.load(input, allow_pickle=False)
        from stc.runtime.contract import POLICIES

        if input_policy not in POLICIES:
            raise ValueError(f"--input-policy must be one of {', '.join(POLICIES)}, got "
                             f"{input_policy!r}")
        exe = load_bundle(bundle, device=device, numerics=numerics, public_key=key,
                          kernel_backend=backend, input_policy=input_policy,
                          precision=precision)
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
            if device in ("lava-sim", "loihi"):  # seconds per sample: show that it works
                from rich.console import Console

                rows = len(next(iter(feeds.values())))
                with Console(stderr=True).status(f"running {rows} sample(s) on {device}"):
                    out = exe.infer(feeds)
            else:
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
