"""``stc train``: train a preset on the 8 x 8 digits data set and save a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options

# Tuned recipes for the digits presets (CPU, 2 cores: see benchmarks/results/train_digits_cpu.md).
RECIPES: dict[str, dict] = {
    "spikformer_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
    "sdt_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
    "dsformer_tiny": dict(epochs=8, batch_size=64, lr=4e-3),
}


def _device(name: str | None) -> str:
    """The torch device ("cpu" | "cuda") of a --device value (None/"auto": the machine's)."""
    return options.torch_device(options.machine_device() if name in (None, "auto") else name)


def train(
    model: Annotated[str, typer.Option("--model", help="preset (stc.models)")] = "spikformer_tiny",
    epochs: Annotated[int | None, typer.Option(
        "--epochs", help="epochs (default: the preset's recipe)")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="checkpoint directory (default runs/<model>)")] = None,
    device: Annotated[str | None, options.device(
        ("cpu", "gpu"), default_note="gpu if CUDA is available, else cpu", accept_auto=True)]
    = None,
    seed: Annotated[int, typer.Option("--seed", help="seed of init, shuffling, split")] = 0,
    lr: Annotated[float | None, typer.Option("--lr", help="peak learning rate")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="batch size")] = None,
    backend: Annotated[str, options.backend()] = "auto",
    threads: Annotated[int, typer.Option(
        "--threads", help="torch CPU threads (0: torch's default; 1 on a busy machine)")] = 0,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", min=0.0, max=0.5,
        help="share of the training set for the per-epoch validation accuracy that picks "
             "the best epoch (0: keep the last epoch)")] = 0.1,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue from OUT/train_state (same settings)")] = False,
) -> None:
    """Train MODEL on sklearn's digits (80/20 stratified split; a validation share of the
    80% picks the best epoch), show a progress bar with ETA and per-epoch validation
    accuracy, then the held-out accuracy and firing rates; save the best epoch as
    OUT/model.safetensors + OUT/config.json (OUT/train_state makes --resume possible)."""

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
        cfg = TrainConfig(seed=seed, val_fraction=val_fraction, **recipe)
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
    target = out or Path("runs") / model
    state_dir = target / "train_state"
    if resume and not (state_dir / "train_state.json").is_file():
        console.print(f"[yellow]--resume: no training state in {state_dir}; starting afresh")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  TextColumn("{task.fields[info]}"), console=console) as progress:
        task = progress.add_task("train", total=None, info="")

        def on_step(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total)

        def on_epoch_end(rec: dict) -> None:
            val = rec["val_accuracy"]
            text = (f"epoch {rec['epoch']:3d}/{cfg.epochs}  loss {rec['loss']:.4f}  "
                    f"lr {rec['lr']:.2e}" + (f"  val acc {val * 100:6.2f}%" if val is not None
                                             else "") + ("  (best)" if rec["best"] else ""))
            progress.console.print(text)
            progress.update(task, info=f"epoch {rec['epoch']}/{cfg.epochs}")

        try:
            result = train_model(net, data, cfg, device=dev, on_step=on_step,
                                 on_epoch_end=on_epoch_end, state_dir=state_dir,
                                 resume=resume)
        except ValueError as err:
            console.print(f"[red]{err}")
            raise typer.Exit(2) from err
    kept = (f"best epoch {result.best_epoch} (val acc {result.best_val_accuracy * 100:.2f}%)"
            if result.best_epoch is not None else f"last epoch {result.epochs_run}")
    console.print(f"held-out accuracy: {result.test_accuracy * 100:.2f}% "
                  f"({len(data.y_test)} samples) with the {kept}, "
                  f"{result.seconds:.1f} s training")
    console.print("output firing rates (held-out):")
    for name, rate in result.firing_rates.items():
        console.print(f"  {name:40s} {rate:.4f}")
    save_checkpoint(net, target, metadata={"test_accuracy": result.test_accuracy,
                                           "epochs": result.epochs_run, "seed": seed,
                                           "train_seconds": result.seconds,
                                           "best_epoch": result.best_epoch,
                                           "best_val_accuracy": result.best_val_accuracy,
                                           "history": result.history,
                                           **training_record(seed)})
    console.print(f"saved {target}")
    from stc.bench.plots import firing_rates_figure, training_curves

    title = (f"{model} on sklearn digits: {result.epochs_run} epochs, seed {seed}, "
             f"device {dev}")
    curves = training_curves(result.history, target / "training_curves.png", title=title,
                             test_accuracy=result.test_accuracy)
    rates = firing_rates_figure(result.firing_rates, target / "firing_rates.png",
                                title=f"{model}: output firing rate per layer (held-out "
                                      "digits)")
    console.print(f"plots: {curves}, {rates}")
