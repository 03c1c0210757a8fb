"""Spike-driven Transformer v1 (Yao et al., NeurIPS 2023; code BICLab/Spike-Driven-Transformer,
model/spikeformer.py, module/ms_conv.py, module/sps.py), on stc's LIF and SDSA.

Membrane shortcuts: every block input is a real-valued membrane (pre-spike) tensor; a LIF sits
before each conv/linear and residuals add pre-spike values. Parameter names follow the official
code: ``patch_embed`` (MS-SPS), ``block.{i}.attn`` (SDSA), ``block.{i}.mlp``, ``head``.
"""

from __future__ import annotations

import torch
from torch import nn

from stc.precision import gemm_precision

from .config import ModelConfig
from .layers import MSSPS, SDTMLP, direct_encode, make_lif
from .precision import PrecisionMixin


class SDTBlock(nn.Module):
    """MS_Block_Conv: x = x + SDSA(x); x = MLP(x) (MLP holds its own residual).

    Tokens [T, B, N, D] of membrane values in and out. SDSA starts with its membrane-shortcut
    LIF (``attn.shortcut_lif``), as the official MS_SSA_Conv.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from stc.nn.attention import SDSA

        self.attn = SDSA(cfg.embed_dim, cfg.num_heads, backend=cfg.backend)
        self.mlp = SDTMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return self.mlp(x)


class SpikeDrivenTransformer(PrecisionMixin, nn.Module):
    """SDT-L-D: images -> logits.

    Forward: x [B, C, H, W] (repeated over ``config.T``) or encoded [T, B, C, H, W] ->
    logits [B, num_classes] = mean over T of head(LIF(mean over tokens of the last block)).

    Raises:
        TypeError / ValueError: bad config or input (``stc.models.layers.direct_encode``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.patch_embed = MSSPS(config)
        self.block = nn.ModuleList(SDTBlock(config) for _ in range(config.depths))
        self.head_lif = make_lif(config)
        self.head = nn.Linear(config.embed_dim, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded images [T, B, C, H, W] -> token means [T, B, D] (membrane values)."""
        x = self.patch_embed(x)
        for blk in self.block:
            x = blk(x)
        return x.mean(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        x = direct_encode(x, cfg.T, cfg.in_channels, cfg.img_size)
        with gemm_precision(self.precision, x.device.type):
            y = self.head(self.head_lif(self.forward_features(x))).mean(0)
        return y.float()
