"""Training loop for the spiking transformers: AdamW/Adam, cosine LR, cross-entropy on the
mean-over-T logits, surrogate gradients through every LIF (BPTT over T), fixed seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from stc.errors import check_choice, check_positive

from .data import DigitsSplit


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: passes over the training set (>= 1).
        batch_size: samples per step.
        lr: peak learning rate; cosine-annealed per step to ``lr * min_lr_ratio``.
        weight_decay: decoupled weight decay (AdamW) or L2 (Adam).
        optimizer: "adamw" | "adam".
        seed: seeds torch's RNG (initialisation is up to the caller; shuffling uses it).
        max_seconds: stop after the epoch in which this wall time is exceeded (None: no limit).
        val_fraction: share of the training set held out (stratified, seeded) for the
            per-epoch validation accuracy that picks the best epoch; 0 disables it (the
            per-epoch accuracy is then not computed and the last epoch is kept).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    min_lr_ratio: float = 0.01
    seed: int = 0
    max_seconds: float | None = None
    val_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")
        if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                or self.batch_size < 1):
            raise ValueError(f"batch_size must be an int >= 1, got {self.batch_size!r}")
        check_positive("lr", self.lr)
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        check_choice("optimizer", self.optimizer, ("adamw", "adam"))


@dataclass
class TrainResult:
    """Outcome of ``train_model``: held-out accuracy in [0, 1], per-epoch mean training loss,
    wall seconds, epochs run, and per-neuron-layer output firing rates on held-out data."""

    test_accuracy: float
    losses: list[float]
    seconds: float
    epochs_run: int
    firing_rates: dict[str, float] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # per epoch: loss, lr, val_accuracy, s
    best_epoch: int | None = None  # the epoch whose weights the model holds (val_fraction > 0)
    best_val_accuracy: float | None = None


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode logits [n, num_classes] for images x [n, C, H, W], in batches."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        out = [model(x[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
             ) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on images x [n, C, H, W], labels y [n]."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)}, "
                         f"{len(y)}")
    return float((predict(model, x, batch_size).argmax(1) == y.cpu()).float().mean())


def _val_split(data, fraction: float, seed: int):
    """(x_train, y_train, x_val, y_val): a stratified, seeded share of the training set."""
    if fraction <= 0:
        return data.x_train, data.y_train, None, None
    from sklearn.model_selection import train_test_split

    idx = torch.arange(len(data.y_train)).numpy()
    tr, va = train_test_split(idx, test_size=fraction, stratify=data.y_train.numpy(),
                              random_state=seed)
    tr, va = torch.from_numpy(tr), torch.from_numpy(va)
    return data.x_train[tr], data.y_train[tr], data.x_train[va], data.y_train[va]


def train_model(model: nn.Module, data: DigitsSplit, cfg: TrainConfig | None = None,
                device: str | torch.device = "cpu",
                on_epoch: Callable[[int, float, float], None] | None = None, *,
                on_step: Callable[[int, int], None] | None = None,
                on_epoch_end: Callable[[dict], None] | None = None,
                state_dir: str | None = None, resume: bool = False) -> TrainResult:
    """Train ``model`` on ``data.x_train`` and report held-out accuracy and firing rates.

    Args:
        model: maps [B, C, H, W] to logits [B, K] (e.g. ``create_model("sdt_tiny")``).
        data: a DigitsSplit (or any object with x_train/y_train/x_test/y_test tensors).
        cfg: TrainConfig; default settings if None.
        device: where to train.
        on_epoch: called as on_epoch(epoch, mean_loss, lr) after each epoch (progress).
        on_step: called as on_step(step, total_steps) after each optimiser step (progress
            bars; steps count from the start of training, resumed steps included).
        on_epoch_end: called with the epoch's record {"epoch", "loss", "lr",
            "val_accuracy" (None without a validation split), "seconds", "best"}.
        state_dir: folder for the resumable training state (stc.train.state), written
            atomically after every epoch; None: no state is kept.
        resume: continue from the state in ``state_dir`` (same config and seed: the result
            equals an uninterrupted run on the CPU). Without a state there it starts afresh.

    Returns:
        TrainResult. The model is left in eval mode on ``device`` holding the best
        validation epoch's weights when ``cfg.val_fraction > 0``, else the last epoch's;
        ``test_accuracy`` is measured on ``data.x_test`` with those weights only (the test
        set never picks the epoch).

    Raises:
        ValueError: a state in ``state_dir`` from another config or model.
    """
    from stc.models.stats import firing_rates

    from .state import load_train_state, save_train_state

    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device).train()
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_train, y_train, x_val, y_val = _val_split(data, cfg.val_fraction, cfg.seed)
    n = len(x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: cfg.min_lr_ratio + (1 - cfg.min_lr_ratio)
        * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    history: list[dict] = []
    best: dict = {"epoch": None, "acc": -1.0, "state": None}
    start = time.perf_counter()
    epoch = first = 0
    if resume and state_dir is not None:
        st = load_train_state(state_dir, model, opt, sched, gen, cfg)
        if st is not None:
            first, history, best = st["epoch"], st["history"], st["best"]
            losses = [h["loss"] for h in history]
            start -= history[-1]["seconds"] if history else 0.0
    epoch = first
    for epoch in range(first + 1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
            if on_step is not None:
                on_step((epoch - 1) * steps_per_epoch + i // cfg.batch_size + 1, total)
        losses.append(running / n)
        val_acc = evaluate(model, x_val, y_val) if x_val is not None else None
        is_best = val_acc is not None and val_acc > best["acc"]
        if is_best:
            best = {"epoch": epoch, "acc": val_acc,
                    "state": {k: v.detach().to("cpu", copy=True)
                              for k, v in model.state_dict().items()}}
        rec = {"epoch": epoch, "loss": losses[-1], "lr": sched.get_last_lr()[0],
               "val_accuracy": val_acc, "seconds": time.perf_counter() - start,
               "best": is_best}
        history.append(rec)
        if state_dir is not None:
            save_train_state(state_dir, model, opt, sched, gen, cfg, epoch, history, best)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], sched.get_last_lr()[0])
        if on_epoch_end is not None:
            on_epoch_end(rec)
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            break
    seconds = time.perf_counter() - start
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    acc = evaluate(model, data.x_test, data.y_test)
    model.eval()
    rates = firing_rates(model, data.x_test[:256].to(device))
    return TrainResult(acc, losses, seconds, epoch, rates, history, best["epoch"],
                       None if best["epoch"] is None else best["acc"])
