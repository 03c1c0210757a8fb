"""Small active transformers for the Lava tests: the digits presets with random weights and
batch-norm statistics drawn so that every LIF layer fires (10-40 %)."""

from __future__ import annotations

import torch


def active_model(kind: str, seed: int = 1):
    """``create_model(kind)`` (a *_tiny preset) in eval mode with BN gamma in [3, 7), beta in
    [-0.5, 1), running var in [0.5, 1.5): layers fire on integer pixels 0..16."""
    from stc.models import create_model

    torch.manual_seed(seed)
    m = create_model(kind, backend="torch")
    gen = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            n = mod.num_features
            mod.weight.data = 3 + 4 * torch.rand(n, generator=gen)
            mod.bias.data = -0.5 + 1.5 * torch.rand(n, generator=gen)
            mod.running_var.data = 0.5 + torch.rand(n, generator=gen)
    return m.eval()


def pixels(batch: int, seed: int = 0) -> torch.Tensor:
    """Integer pixels 0..16, [B, 1, 8, 8] float."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (batch, 1, 8, 8), generator=gen).float()
