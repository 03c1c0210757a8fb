"""``stc infer``: call a served model once with inputs from .npy files and print/save outputs.

Exit codes: 0 success, 1 the server answered with an error status, 2 bad usage (unreadable
input file, malformed --input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options


def _parse_inputs(specs: list[str]) -> dict[str, Path]:
    """``["x.npy"]`` -> {"": x.npy} (the model's only input); ``["a=a.npy", ...]`` -> by name."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if name in out:
            raise typer.BadParameter(f"--input {spec!r} repeats input {name or '(default)'}")
        p = Path(path)
        if not p.is_file():
            raise typer.BadParameter(f"--input file {p} does not exist")
        out[name] = p
    return out


def infer(
    inputs: Annotated[list[str], typer.Option(
        "--input", help="x.npy (single-input models) or NAME=file.npy")],
    url: str = typer.Option("localhost:8001", "--url", help="server host:port"),
    model: str = typer.Option(..., "--model", help="model name"),
    version: str = typer.Option("", "--model-version", help="version (default: latest)"),
    output_names: Annotated[list[str] | None, typer.Option(
        "--output-name", help="output tensor to return (repeatable; default: all)")] = None,
    out_dir: str = typer.Option(None, "--out-dir", help="save each output as NAME.npy here"),
    token: str = typer.Option(None, "--token", envvar="STC_SERVE_TOKEN", help="Bearer token"),
    tls_ca: str = typer.Option(None, "--tls-ca", help="CA certificate (PEM) to enable TLS"),
    timeout: float = typer.Option(30.0, "--timeout", help="deadline (s)"),
    top_k: int = typer.Option(3, "--top-k", min=0,
                              help="classes shown per sample of a [B, classes] output "
                                   "(0: print the array)"),
    output: Annotated[list[str] | None, options.deprecated("--output", "--output-name")] = None,
) -> None:
    """Send one ModelInfer request (OIP v2) to URL and print each output's shape and values."""
    output = options.pick(output_names, output)
    import grpc
    import numpy as np

    from stc.client import Client

    files = _parse_inputs(inputs)
    with Client(url, token=token, root_certificates=tls_ca, timeout=timeout) as client:
        try:
            if "" in files:
                if len(files) > 1:
                    raise typer.BadParameter("use NAME=file.npy for every --input of a "
                                             "multi-input model")
                meta = client.metadata_of(model, version)
                if len(meta["inputs"]) != 1:
                    names = [t["name"] for t in meta["inputs"]]
                    raise typer.BadParameter(f"model {model} has inputs {names}; use NAME=file")
                files = {meta["inputs"][0]["name"]: files[""]}
            arrays = {name: as_float32(name, np.load(path, allow_pickle=False))
                      for name, path in files.items()}
            # split into requests of the server's max batch (it refuses larger ones)
            result = client.infer_batched(model, arrays, version=version,
                                          outputs=output or None)
        except grpc.RpcError as e:
            typer.echo(f"error: {e.code().name}: {e.details()}", err=True)
            raise typer.Exit(1) from e
    for name, arr in result.items():
        typer.echo(format_output(name, arr, top_k))
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            np.save(Path(out_dir) / f"{name}.npy", arr)


def as_float32(name: str, arr):
    """float64 arrays (numpy's default) are sent as float32, the models' input type, with a
    note on stderr, as ``stc run`` does; other dtypes go unchanged (the server checks them)."""
    import numpy as np

    if arr.dtype == np.float64:
        typer.echo(f"note: input {name or '(default)'} is float64; sent as float32", err=True)
        return arr.astype(np.float32)
    return arr


def format_output(name: str, arr, top_k: int = 3, max_rows: int = 16) -> str:
    """One output as text: for [B, classes] the top-k classes of each sample (score in
    brackets; the first ``max_rows`` samples), otherwise a summarised array."""
    import numpy as np

    head = f"{name}: {arr.dtype} {list(arr.shape)}"
    if top_k == 0 or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        return head + "\n" + np.array2string(arr, threshold=64)
    k = min(top_k, arr.shape[1])
    order = np.argsort(-arr, axis=1, kind="stable")[:, :k]
    lines = [head + f" (top-{k} classes per sample)"]
    for i in range(min(len(arr), max_rows)):
        lines.append(f"  sample {i}: " + ", ".join(
            f"{int(c)} ({float(arr[i, c]):.4g})" for c in order[i]))
    if len(arr) > max_rows:
        lines.append(f"  ... {len(arr) - max_rows} more (save them with --out-dir)")
    return "\n".join(lines)
