"""``stc bench``: end-to-end inference benchmark (stc vs SpikingJelly-style baseline) + energy.

Writes <out>/<stem>.json, .md and two PNGs (stc.bench.report). Exit code 1 when stc's and the
baseline's predictions disagree, 2 on bad usage.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from . import options


def _ints(name: str, text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise typer.BadParameter(f"{name} must be comma-separated integers, got {text!r}") from e
    if not vals or min(vals) < 1:
        raise typer.BadParameter(f"{name} must list integers >= 1, got {text!r}")
    return vals


def default_run_folder(root: str | Path = "runs/bench") -> Path:
    """A new folder ``root/<UTC time>`` for one bench run (never benchmarks/results: recorded
    results are only written there when ``--out`` says so)."""
    import datetime

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{stamp}-{n}"
    return path


def bench(
    models: str = typer.Option(None, "--models",
                               help="comma-separated presets (default: spikformer_8_384, "
                                    "sdt_8_512, dsformer_8_384)"),
    batch_sizes: str = typer.Option(None, "--batch-sizes",
                                    help="comma-separated batch sizes (GPU default 1..256)"),
    img_size: int = typer.Option(None, "--img-size", help="input side in pixels (GPU: 224)"),
    timesteps: int = typer.Option(4, "--timesteps", "-T", help="timesteps T"),
    depths: int = typer.Option(None, "--depths", help="override the number of blocks"),
    device: Annotated[str | None, options.device(
        ("cpu", "gpu"), default_note="gpu if CUDA is available, else cpu", accept_auto=True)]
    = None,
    small: bool = typer.Option(None, "--small/--full",
                               help="reduced CPU sizes (default: --small without a GPU)"),
    repeats: int = typer.Option(None, "--repeats", help="timed calls per point"),
    stc_impl: str = typer.Option("runtime", "--stc-impl",
                                 help="runtime (SpikeCompiler + stc.runtime) | eager (module)"),
    energy_seconds: float = typer.Option(5.0, "--energy-seconds",
                                         help="minimum GPU energy window (s)"),
    loihi_timestep_us: float = typer.Option(1000.0, "--loihi-timestep-us",
                                            help="ASSUMED Loihi timestep for static power (us)"),
    out: str = typer.Option(None, "--out",
                            help="output folder (default: a new runs/bench/<UTC time>)"),
    stem: str = typer.Option(None, "--stem", help="file name stem (default e2e_<device>)"),
) -> None:
    """Time stc vs the SpikingJelly baseline on MODELS x BATCH_SIZES, check their predictions
    agree, estimate/measure energy per inference, and write a Markdown + PNG report."""
    import torch

    from stc.extras import MissingExtraError, require

    try:
        require("spikingjelly", "bench", "stc bench (its SpikingJelly baseline)")
    except MissingExtraError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    from stc.bench import BenchConfig, run_suite, small_cpu_config, write_report

    device = {None: "auto", "gpu": "cuda"}.get(device, device)  # the suite's names
    if device == "cuda":
        options.torch_device("gpu")  # exit 2 without CUDA
    on_gpu = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if small is None:
        small = not on_gpu
    cfg = small_cpu_config() if small else BenchConfig()
    cfg.device = device if not small or device != "auto" else ("cuda" if on_gpu else "cpu")
    if models:
        cfg.models = tuple(m.strip() for m in models.split(",") if m.strip())
    if batch_sizes:
        cfg.batch_sizes = _ints("--batch-sizes", batch_sizes)
    if img_size is not None:
        cfg.img_size = img_size
    if timesteps < 1:
        raise typer.BadParameter(f"--timesteps must be >= 1, got {timesteps}")
    cfg.T = timesteps
    if depths is not None:
        cfg.overrides = {**cfg.overrides, "depths": depths}
    if repeats is not None:
        cfg.repeats = repeats
    cfg.stc_impl = stc_impl
    cfg.energy_seconds = energy_seconds
    if loihi_timestep_us <= 0:
        raise typer.BadParameter(f"--loihi-timestep-us must be > 0, got {loihi_timestep_us}")
    cfg.loihi_timestep_s = loihi_timestep_us * 1e-6
    points = len(cfg.models) * len(cfg.batch_sizes)
    done = [0]

    def log(line: str) -> None:  # one line per (model, batch) point, numbered
        done[0] += 1
        typer.echo(f"[{done[0]}/{points}] {line}")

    typer.echo(f"stc bench: {points} points ({len(cfg.models)} models x "
               f"{len(cfg.batch_sizes)} batch sizes), {cfg.repeats} timed calls each", err=True)
    try:
        result = run_suite(cfg, log=log)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    stem = stem or f"e2e_{result['environment']['device_type']}"
    out = out or default_run_folder()
    command = " ".join([
        "stc bench", "--small" if small else "--full", f"--models {','.join(cfg.models)}",
        f"--batch-sizes {','.join(map(str, cfg.batch_sizes))}", f"--img-size {cfg.img_size}",
        f"-T {cfg.T}", f"--device {cfg.device}", f"--repeats {cfg.repeats}",
        f"--stc-impl {stc_impl}",
        *([f"--depths {depths}"] if depths is not None else []),
        f"--loihi-timestep-us {loihi_timestep_us:g}", f"--out {shlex.quote(str(out))}",
        f"--stem {stem}"])
    paths = write_report(result, Path(out), command=command, stem=stem)
    for p in paths.values():
        typer.echo(f"wrote {p}")
    if not all(m["agree"] for m in result["models"].values()):
        typer.echo("ERROR: stc and baseline predictions disagree (see the report)", err=True)
        raise typer.Exit(1)
