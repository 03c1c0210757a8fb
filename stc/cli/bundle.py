"""``stc bundle MODEL -o model.stcb``: compile a model into a verified bundle.

MODEL is a checkpoint directory from ``stc train`` (model.safetensors + config.json), a NIR
file (``.nir``, with ``--dt``), an ONNX ANN (``.onnx``, with ``--calibration``; converted by
stc.convert, see ``stc convert``), or ``package.module:factory`` (a function returning an
nn.Module; ``--input-shape`` required).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer


@contextlib.contextmanager
def cli_errors(check_code: int = 1):
    """Turn stc's user-facing errors into a one-line message and an exit code: 2 for bad input
    or usage, ``check_code`` for a failed bundle check (BundleError)."""
    from stc.errors import BundleError, MappingError, UnsupportedTargetError
    from stc.ir import GraphError

    try:
        yield
    except BundleError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(check_code) from None
    except (MappingError, UnsupportedTargetError, GraphError, FileNotFoundError, ValueError,
            TypeError, ImportError, AttributeError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated ints such as 1,28,28; "
                         f"got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ValueError(f"--input-shape must be positive ints, got {text!r}")
    return shape


def load_model_source(model: str, input_shape: str | None, dt: float | None):
    """(model object, per-sample input shape or None, default name) for a MODEL argument."""
    p = Path(model)
    if p.is_dir():
        from stc.train import load_checkpoint

        m = load_checkpoint(p, backend="torch")
        return m, None, p.name
    if p.suffix == ".onnx":  # an ANN: stc.convert with --calibration (stc convert has more)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX file not found: {p}")
        return str(p), None, p.stem
    if p.suffix == ".nir":
        if not p.is_file():
            raise FileNotFoundError(f"NIR file not found: {p}")
        return str(p), None, p.stem  # dt: --dt, else the graph metadata's (stc.ir.frontends.nir)
    if ":" in model and not p.exists():
        mod_name, _, fn_name = model.partition(":")
        sys.path.insert(0, str(Path.cwd()))
        try:
            factory = getattr(importlib.import_module(mod_name), fn_name)
        finally:
            sys.path.pop(0)
        m = factory()
        shape = _shape(input_shape)
        if shape is None:
            raise ValueError("module:factory models need --input-shape, e.g. 1,28,28")
        return m, shape, fn_name
    raise FileNotFoundError(f"MODEL {model!r} is not a checkpoint directory, a .nir file or "
                            "module:factory")


def bundle(
    model: Annotated[str, typer.Argument(help="checkpoint dir, file.nir or module:factory")],
    output: Annotated[Path, typer.Option("--output", "-o", help="bundle file to write")],
    name: Annotated[str | None, typer.Option(help="model name (default: from MODEL)")] = None,
    version: Annotated[str, typer.Option(help="model version")] = "1",
    time_steps: Annotated[int, typer.Option("--time-steps", "-T", min=1,
                                            help="T of the direct encoder")] = 4,
    input_shape: Annotated[str | None, typer.Option(help="per-sample shape, e.g. 1,28,28")] = None,
    dt: Annotated[float | None, typer.Option(help="NIR time step (seconds)")] = None,
    fixed: Annotated[bool, typer.Option("--fixed/--float",
                                        help="also quantise to Loihi fixed point")] = False,
    opt_level: Annotated[int, typer.Option(min=0, max=3, help="optimisation level")] = 2,
    key: Annotated[Path | None, typer.Option(help="Ed25519 private key (PEM) to sign")] = None,
    calibration: Annotated[Path | None, typer.Option(
        help=".npy calibration inputs for a .onnx ANN (see stc convert)")] = None,
) -> None:
    """Compile MODEL and write a signed (with --key) .stcb bundle."""
    with cli_errors(check_code=2):
        from rich.console import Console

        from stc.compiler import SpikeCompiler

        console = Console(stderr=True)
        with console.status("loading model"):
            src, shape, default_name = load_model_source(model, input_shape, dt)
        level = max(opt_level, 3) if fixed else opt_level
        with console.status("compiling (frontend, passes)"):
            calib = None
            if calibration is not None:
                import numpy as np

                calib = np.load(calibration, allow_pickle=False)
            compiled = SpikeCompiler("cpu", level, time_steps).compile(src, shape, dt=dt,
                                                                       calibration=calib)
        with console.status("writing bundle"):
            path = compiled.save(output, name=name or default_name, version=version,
                                 private_key=key)
        q = compiled.reports.get("quantization")
        if q:
            typer.echo(f"fixed point: spike agreement {q['overall_agreement']:.4f} on the probe")
        typer.echo(f"wrote {path} ({path.stat().st_size} bytes"
                   f"{', signed' if key else ''})")
