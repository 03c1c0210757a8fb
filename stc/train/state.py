"""Resumable training state: ``train_state.safetensors`` (model, best-epoch weights, optimiser
moments, RNG states) and ``train_state.json`` (epoch, history, scheduler, config) in a folder.

No pickle: tensors go to safetensors, everything else to JSON. Both files are replaced
atomically and carry the epoch, so a state torn by a crash between the two is detected.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from .checkpoint import _atomic_write

TENSORS = "train_state.safetensors"
META = "train_state.json"


def save_train_state(folder, model, opt, sched, gen, cfg, epoch: int, history: list,
                     best: dict) -> Path:
    """Write the state after ``epoch`` into ``folder`` (created); returns the folder."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    t: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        t[f"model.{k}"] = v.detach().to("cpu").contiguous()
    for k, v in (best.get("state") or {}).items():
        t[f"best.{k}"] = v.contiguous()
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for key, v in st.items():
            t[f"opt.{idx}.{key}"] = torch.as_tensor(v).detach().to("cpu").contiguous()
    t["rng.generator"] = gen.get_state()
    t["rng.torch"] = torch.get_rng_state()
    meta = {"epoch": epoch, "history": history,
            "best": {"epoch": best.get("epoch"), "acc": best.get("acc")},
            "config": dataclasses.asdict(cfg), "param_groups": osd["param_groups"],
            "scheduler": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}}
    _atomic_write(out / TENSORS, lambda tmp: save_file(t, tmp, metadata={"epoch": str(epoch)}))

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)

    _atomic_write(out / META, write)
    return out


def load_train_state(folder, model, opt, sched, gen, cfg) -> dict | None:
    """Restore a state written by :func:`save_train_state` into the given objects.

    Returns:
        {"epoch", "history", "best"} or None when ``folder`` has no state.

    Raises:
        ValueError: the state belongs to another config (any field but epochs and
            max_seconds differs), another model (weights do not match), or is torn.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    src = Path(folder)
    if not (src / META).is_file() or not (src / TENSORS).is_file():
        return None
    meta = json.loads((src / META).read_text(encoding="utf-8"))
    with safe_open(os.fspath(src / TENSORS), "pt") as f:
        tensor_epoch = (f.metadata() or {}).get("epoch")
    if tensor_epoch != str(meta["epoch"]):
        raise ValueError(f"training state in {src} is torn (tensors of epoch {tensor_epoch}, "
                         f"metadata of epoch {meta['epoch']}); delete it to start afresh")
    want = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("epochs",
                                                                          "max_seconds")}
    have = {k: v for k, v in meta["config"].items() if k not in ("epochs", "max_seconds")}
    if want != have:
        diff = sorted(k for k in want if want.get(k) != have.get(k))
        raise ValueError(f"training state in {src} was made with another config (differs in "
                         f"{diff}); use the same settings or another --out")
    if meta["config"]["epochs"] != cfg.epochs:
        raise ValueError(f"training state in {src} is for {meta['config']['epochs']} epochs "
                         f"(the learning-rate schedule depends on it), not {cfg.epochs}")
    t = load_file(os.fspath(src / TENSORS))
    try:
        model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    except RuntimeError as e:
        raise ValueError(f"training state in {src} is for another model: {e}") from None
    state: dict = {}
    for k, v in t.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(opt.param_groups)})
    gen.set_state(t["rng.generator"])
    torch.set_rng_state(t["rng.torch"])
    best_state = {k[5:]: v for k, v in t.items() if k.startswith("best.")} or None
    return {"epoch": meta["epoch"], "history": meta["history"],
            "best": {"epoch": meta["best"]["epoch"], "acc": meta["best"]["acc"],
                     "state": best_state}}
