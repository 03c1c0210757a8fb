"""Checkpoints: model weights as safetensors plus the ModelConfig as JSON beside them.

Layout of ``path`` (a directory): ``model.safetensors`` and ``config.json``. Both files are
written atomically (temporary file in the same directory, then ``os.replace``), so a reader
never sees a half-written checkpoint. Loading executes no code (no pickle).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None
                    ) -> Path:
    """Save ``model`` (with a ``config`` ModelConfig) into directory ``path``; return it.

    Tensors are stored contiguous on CPU; ``metadata`` (str -> JSON-able) goes into
    config.json under "metadata".

    Raises:
        TypeError: model has no ``config`` with ``to_dict()``.
    """
    from safetensors.torch import save_file

    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise TypeError("model must carry a ModelConfig as model.config (use create_model)")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _atomic_write(out / WEIGHTS, lambda tmp: save_file(state, tmp))
    doc = {"config": cfg.to_dict(), "metadata": metadata or {}}

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)

    _atomic_write(out / CONFIG, write_json)
    return out


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu",
                    **overrides) -> nn.Module:
    """Rebuild the model saved by ``save_checkpoint`` (config overrides, e.g. backend="torch").

    Returns the model in eval mode on ``device``.

    Raises:
        FileNotFoundError: config.json or model.safetensors missing.
        ValueError: invalid config, or weights whose keys/shapes do not match the model.
    """
    from safetensors.torch import load_file

    from stc.models import ModelConfig, build_model

    src = Path(path)
    for name in (CONFIG, WEIGHTS):
        if not (src / name).is_file():
            raise FileNotFoundError(f"checkpoint {src} has no {name}")
    doc = json.loads((src / CONFIG).read_text(encoding="utf-8"))
    cfg = ModelConfig.from_dict(doc["config"]).replace(**overrides)
    model = build_model(cfg)
    state = load_file(str(src / WEIGHTS))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights in {src / WEIGHTS} do not match the config: {err}") from err
    return model.to(device).eval()
