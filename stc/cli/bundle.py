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

from . import options


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
        raise ValueError(f"--input-shape must be comma-separated ints such as 1,8,8; "
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


def _load_npy(path: Path, what: str):
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{what} file {path} is not a .npy array (numpy.save, no pickles): "
                         f"{e}") from None


def _read_contract(path: Path) -> dict:
    import json

    from stc.runtime.contract import validate_contract

    if not path.is_file():
        raise FileNotFoundError(f"--input-contract file not found: {path}")
    try:
        c = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--input-contract {path} is not JSON: {e}") from None
    return validate_contract("input", c)


def calibration_data(model: str, calibration: Path | None, labels: Path | None,
                     record: dict, contract: dict | None):
    """(x, y or None, source text) for fixed-point calibration: the given .npy files, else
    the held-out split of the dataset recorded in the checkpoint, else (None, None, reason).

    Raises:
        ValueError: --labels without --calibration; a file that is not a .npy array; data
            outside the input contract's range (named).
    """
    from stc.runtime.contract import apply_contract

    if labels is not None and calibration is None:
        raise ValueError("--labels needs --calibration (the samples the labels belong to)")
    if calibration is not None:
        x = _load_npy(calibration, "--calibration")
        y = None if labels is None else _load_npy(labels, "--labels")
        if contract is not None:
            apply_contract("calibration", x, contract)
        return x, y, f"{calibration} ({len(x)} samples)"
    if record.get("dataset"):
        from stc.train.contract import heldout_split

        x, y = heldout_split(record["dataset"])
        return x, y, f"held-out split of {record['dataset']['name']} ({len(x)} samples)"
    return None, None, f"none (MODEL {model!r} records no dataset; pass --calibration)"


def quant_table(report: dict, source: str):
    """A rich table of a quantisation report: per-layer exponent, threshold and spike
    agreement; float / fixed accuracy and output agreement on the calibration samples."""
    from rich.table import Table

    t = Table(title=f"fixed point on {source}")
    for col in ("layer", "neuron", "exponent", "v_th_mant", "calibrated", "spike agreement"):
        t.add_column(col, justify="right" if col not in ("layer", "neuron") else "left",
                     overflow="fold")
    agree = report.get("spike_agreement", {})
    for la in report["layers"]:
        cal = report.get("calibrated", {}).get(la["name"])
        neuron = la.get("neuron")  # SDT's stream rows (stc.passes.quantize_residual) have none
        t.add_row(la["name"], neuron or "(stream)", str(la["exponent"]),
                  str(la.get("v_th_mant", "")),
                  "" if cal is None else f"e{cal['exponent_shift']:+d}" + (
                      f" th{cal['v_th_delta']:+d}" if "v_th_delta" in cal else ""),
                  "" if neuron not in agree else f"{agree[neuron]:.4f}")

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}%"
    t.caption = (f"input scale {report.get('input_scale')}; {report.get('samples', 0)} "
                 f"samples: float accuracy {pct(report.get('accuracy_float'))}, fixed "
                 f"accuracy {pct(report.get('accuracy_fixed'))}, output agreement "
                 f"{pct(report.get('output_agreement'))}, spike agreement "
                 f"{pct(report.get('overall_agreement'))}")
    return t


def bundle(
    model: Annotated[str, typer.Argument(help="checkpoint dir, file.nir or module:factory")],
    output: Annotated[Path, typer.Option("--output", "-o", help="bundle file to write")],
    name: Annotated[str | None, typer.Option(help="model name (default: from MODEL)")] = None,
    version: Annotated[str, typer.Option(help="model version")] = "1",
    timesteps: Annotated[int, typer.Option("--timesteps", "-T", min=1,
                                           help="timesteps T of the direct encoder")] = 4,
    input_shape: Annotated[str | None, typer.Option(help="per-sample shape, e.g. 1,28,28")] = None,
    dt: Annotated[float | None, typer.Option(help="NIR time step (seconds)")] = None,
    fixed: Annotated[bool, typer.Option("--fixed/--float",
                                        help="also quantise to Loihi fixed point")] = False,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="with --fixed: .npy samples [B, *input shape] in the float "
        "model's input space to calibrate on (default: the checkpoint's held-out split); for "
        "a .onnx ANN also the threshold-balancing data (see stc convert)")
    ] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="with --calibration: .npy int labels [B] (report accuracy)")] = None,
    input_contract: Annotated[Path | None, typer.Option(
        "--input-contract", help="JSON file: the input contract (stc.runtime.contract) for "
        "a MODEL that records none (module:factory, .nir); overrides a checkpoint's")] = None,
    opt_level: Annotated[int, typer.Option(min=0, max=3, help="optimisation level")] = 2,
    signing_key: options.SigningKey = None,
    time_steps: Annotated[int | None, options.deprecated("--time-steps", "--timesteps")] = None,
    key: Annotated[Path | None, options.deprecated("--key", "--signing-key")] = None,
) -> None:
    """Compile MODEL and write a .stcb bundle (signed with --signing-key). A checkpoint's input
    contract (stc train) is carried; with --fixed the fixed graph takes the same float input
    and is calibrated on real samples (a table shows float vs fixed accuracy)."""
    timesteps, key = options.pick(timesteps, time_steps), options.pick(signing_key, key)
    with cli_errors(check_code=2):
        from rich.console import Console

        from stc.compiler import SpikeCompiler
        from stc.passes.quantize import quantize
        from stc.runtime.contract import attach_contract

        console = Console(stderr=True)
        is_onnx = str(model).endswith(".onnx")
        if not fixed and (labels is not None or (calibration is not None and not is_onnx)):
            raise ValueError("--calibration / --labels need --fixed (or a .onnx MODEL for "
                             "--calibration)")
        record: dict = {}
        if Path(model).is_dir():
            from stc.train.contract import read_training_record

            record = read_training_record(model)
        contract = record.get("input_contract")
        if input_contract is not None:
            contract = _read_contract(input_contract)
        with console.status("loading model"):
            src, shape, default_name = load_model_source(model, input_shape, dt)
        with console.status("compiling (frontend, passes)"):
            calib = None
            if is_onnx and calibration is not None:  # ANN-to-SNN thresholds (stc convert)
                import numpy as np

                calib = np.load(calibration, allow_pickle=False)
            compiled = SpikeCompiler("cpu", min(opt_level, 2), timesteps).compile(
                src, shape, dt=dt, calibration=calib)
        if contract is not None:
            attach_contract(compiled.graph, contract)
        if fixed or opt_level == 3:
            x, y, source = calibration_data(model, calibration, labels, record, contract)
            with console.status(f"quantising, calibrating on {source}"):
                compiled.fixed_graph, rep = quantize(compiled.graph, calibration=x, labels=y)
            compiled.reports["quantization"] = rep.to_dict()
            console.print(quant_table(rep.to_dict(), source))
        with console.status("writing bundle"):
            path = compiled.save(output, name=name or default_name, version=version,
                                 private_key=key)
        typer.echo(f"wrote {path} ({path.stat().st_size} bytes"
                   f"{', signed' if key else ''})")
