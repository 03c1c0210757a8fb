"""Spikformer (Zhou et al., "Spikformer: When Spiking Neural Network Meets Transformer",
ICLR 2023; code ZK-Zhou/spikformer imagenet/model.py), on stc's LIF and SSA.

Structure and parameter names follow the official code: ``patch_embed`` (SPS), ``block.{i}``
with ``attn`` (SSA) and ``mlp``, and ``head``. The DSFormer model reuses this body with another
attention module (``stc.models.dsformer``).
"""

from __future__ import annotations

import torch
from torch import nn

from stc.precision import gemm_precision

from .config import ModelConfig
from .layers import SPS, SpikformerMLP, direct_encode
from .precision import PrecisionMixin


class SpikformerBlock(nn.Module):
    """x = x + Attn(x); x = x + MLP(x) on tokens [T, B, N, D] (residuals add spikes)."""

    def __init__(self, cfg: ModelConfig, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.mlp = SpikformerMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


def _ssa(cfg: ModelConfig) -> nn.Module:
    from stc.nn.attention import SSA

    return SSA(cfg.embed_dim, cfg.num_heads, scale=cfg.attn_scale, backend=cfg.backend,
               qkv_bias=cfg.qkv_bias)


class Spikformer(PrecisionMixin, nn.Module):
    """Spikformer-L-D: images -> logits.

    Forward: x [B, C, H, W] (direct-encoded: repeated over ``config.T``) or already encoded
    [T, B, C, H, W] (``time_first=True``) / [B, T, C, H, W] (``time_first=False``, the official
    code's event layout; see stc.models.layers.direct_encode) -> logits [B, num_classes] =
    mean over T of head(mean over tokens N).
    Internally tokens are [T, B, N, D], N = (img_size / patch_size) ** 2.

    Args:
        config: a ModelConfig (arch "spikformer" or "dsformer").
        attn_factory: builds one attention module per block from the config (default SSA).

    Raises:
        TypeError / ValueError: bad config, or input of the wrong dtype/rank/size
            (``stc.models.layers.direct_encode``).
    """

    def __init__(self, config: ModelConfig, attn_factory=None) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        config.validate()
        self.config = config
        factory = attn_factory or _ssa
        self.patch_embed = SPS(config)
        self.block = nn.ModuleList(
            SpikformerBlock(config, factory(config)) for _ in range(config.depths))
        self.head = nn.Linear(config.embed_dim, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded images [T, B, C, H, W] -> token means [T, B, D]."""
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.mean(2)

    def forward(self, x: torch.Tensor, time_first: bool | None = None) -> torch.Tensor:
        cfg = self.config
        x = direct_encode(x, cfg.T, cfg.in_channels, cfg.img_size, time_first)
        with gemm_precision(self.precision, x.device.type):
            y = self.head(self.forward_features(x)).mean(0)
        return y.float()
