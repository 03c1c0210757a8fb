"""``stc train``: train a preset on the 8 x 8 digits data set and save a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Tuned recipes for the digits presets (CPU, 2 cores: see benchmarks/results/train_digits_cpu.md).
RECIPES: dict[str, dict] = {
    "spikformer_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
    "sdt_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
    "dsformer_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
}


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise typer.BadParameter(f"--device must be auto, cpu or cuda; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda was given but no CUDA device is available")
    return name


def train(
    model: Annotated[str, typer.Option("--model", help="preset (stc.models)")] = "spikformer_tiny",
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="epochs (default: the preset's recipe)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="checkpoint directory (default runs/<model>)")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="seed of init, shuffling, split")] = 0,
    lr: Annotated[float | None, typer.Option("--lr", help="peak learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="batch size")] = None,
    backend: Annotated[str, typer.Option("--backend", help="auto | triton | torch")] = "auto",
    threads: Annotated[int, typer.Option(
        "--threads", help="torch CPU threads (0: torch's default; 1 on a busy machine)")] = 0,
) -> None:
    """Train MODEL on sklearn's digits (80/20 stratified split), print progress, held-out
    accuracy and per-layer firing rates, and save OUT/model.safetensors + OUT/config.json."""
    import time

    import torch
    from rich.console import Console

    from stc.models import create_model, list_presets
    from stc.train import TrainConfig, load_digits_split, save_checkpoint, train_model
    from stc.train.contract import training_record

    console = Console()
    if model not in list_presets():
        console.print(f"[red]unknown model {model!r}; expected one of {list_presets()}")
        raise typer.Exit(2)
    dev = _device(device)
    if threads < 0:
        console.print(f"[red]--threads must be >= 0, got {threads}")
        raise typer.Exit(2)
    if threads:
        torch.set_num_threads(threads)
    recipe = dict(RECIPES.get(model, dict(epochs=8, batch_size=64, lr=4e-3)))
    for key, value in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)):
        if value is not None:
            recipe[key] = value
    try:
        cfg = TrainConfig(seed=seed, **recipe)
    except (TypeError, ValueError) as err:
        console.print(f"[red]{err}")
        raise typer.Exit(2) from err
    torch.manual_seed(seed)
    net = create_model(model, backend=backend)
    if net.config.img_size != 8 or net.config.in_channels != 1:
        console.print(f"[red]{model} expects {net.config.img_size}px images; digits are 8x8")
        raise typer.Exit(2)
    from stc.kernels import resolve_backend

    console.print(f"model {model}: {sum(p.numel() for p in net.parameters()):,} parameters, "
                  f"device {dev}, backend {backend} -> "
                  f"{resolve_backend(backend, torch.device(dev))}, {cfg}")
    data = load_digits_split(seed=seed)
    t0 = time.perf_counter()

    def on_epoch(epoch: int, loss: float, lr_now: float) -> None:
        console.print(f"epoch {epoch:3d}/{cfg.epochs}  loss {loss:.4f}  lr {lr_now:.2e}  "
                      f"{time.perf_counter() - t0:6.1f} s")

    result = train_model(net, data, cfg, device=dev, on_epoch=on_epoch)
    console.print(f"held-out accuracy: {result.test_accuracy * 100:.2f}% "
                  f"({len(data.y_test)} samples) after {result.epochs_run} epochs, "
                  f"{result.seconds:.1f} s training")
    console.print("output firing rates (held-out):")
    for name, rate in result.firing_rates.items():
        console.print(f"  {name:40s} {rate:.4f}")
    target = out or Path("runs") / model
    save_checkpoint(net, target, metadata={"test_accuracy": result.test_accuracy,
                                           "epochs": result.epochs_run, "seed": seed,
                                           "train_seconds": result.seconds,
                                           **training_record(seed)})
    console.print(f"saved {target}")
