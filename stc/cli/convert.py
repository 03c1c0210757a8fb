"""``stc convert model.onnx --calibration x.npy [-T 32] [--percentile 99.9] -o snn.stcb``:
ANN-to-SNN conversion of an ONNX model into a verified bundle (stc.convert)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .bundle import _shape, cli_errors


def convert(
    model: Annotated[Path, typer.Argument(help="the ANN as a .onnx file")],
    calibration: Annotated[Path, typer.Option(
        "--calibration", help=".npy calibration inputs [n, *input_shape]")],
    output: Annotated[Path, typer.Option("--output", "-o", help="bundle file to write")],
    timesteps: Annotated[int, typer.Option("--timesteps", "-T", min=1,
                                           help="timesteps T")] = 32,
    percentile: Annotated[float, typer.Option(
        help="threshold-balancing percentile in (0, 100]")] = 99.9,
    spike_encoding: Annotated[str, typer.Option(help="direct | rate")] = "direct",
    layer_wise: Annotated[bool, typer.Option(
        "--layer-wise/--channel-wise", help="one threshold per layer or per channel")] = False,
    bias_shift: Annotated[bool, typer.Option(
        "--bias-shift/--no-bias-shift", help="half a threshold over T (Deng & Gu 2021)")]
    = True,
    input_shape: Annotated[str | None, typer.Option(
        help="per-sample input shape for dynamic models, e.g. 1,8,8")] = None,
    fixed: Annotated[bool, typer.Option("--fixed/--float",
                                        help="also quantise to Loihi fixed point")] = False,
    name: Annotated[str | None, typer.Option(help="model name (default: file stem)")] = None,
    version: Annotated[str, typer.Option(help="model version")] = "1",
    signing_key: Annotated[Path | None, typer.Option(
        "--signing-key", help="Ed25519 private key (PEM) to sign with")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Convert a ReLU ANN (ONNX) to a rate-coded IF SNN and write a .stcb bundle."""
    with cli_errors(check_code=2):
        import json

        import numpy as np

        from stc.convert import convert_onnx

        if not calibration.is_file():
            raise FileNotFoundError(f"calibration file not found: {calibration}")
        try:
            x = np.load(calibration, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"{calibration} is not a readable .npy array: {e}") from None
        conv = convert_onnx(model, x, timesteps=timesteps, percentile=percentile,
                            spike_encoding=spike_encoding, channel_wise=not layer_wise,
                            bias_shift=bias_shift, input_shape=_shape(input_shape))
        path = conv.save(output, fixed=fixed, name=name or model.stem, version=version,
                         private_key=signing_key)
        n = min(len(x), 256)
        ann = conv.run_ann(x[:n])
        snn = conv.run(x[:n])
        agree = float((ann.argmax(-1) == snn.argmax(-1)).mean()) if ann.ndim == 2 else None
        rep = {"bundle": str(path), "bytes": path.stat().st_size,
               "neurons": sum(1 for nd in conv.graph.nodes if nd.OP == "IF"),
               "calibration_argmax_agreement": agree, **conv.report}
        if json_out:
            typer.echo(json.dumps(rep))
            return
        if agree is not None:
            typer.echo(f"SNN (T={timesteps}) vs ANN argmax agreement on {n} calibration "
                       f"inputs: {agree:.4f}")
        if conv.report["bias_shift_not_placed"]:
            typer.echo("note: no bias shift at " + ", ".join(conv.report[
                "bias_shift_not_placed"]))
        typer.echo(f"wrote {path} ({path.stat().st_size} bytes"
                   f"{', signed' if signing_key else ''}{', fixed point' if fixed else ''})")
