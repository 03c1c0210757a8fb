"""Spike-driven Transformer v1 (Yao et al., NeurIPS 2023; code BICLab/Spike-Driven-Transformer,
model/spikeformer.py, module/ms_conv.py, module/sps.py), on stc's LIF and SDSA.

Membrane shortcuts: every block input is a real-valued membrane (pre-spike) tensor; a LIF sits
before each conv/linear and residuals add pre-spike values. Parameter names follow the official
code: ``patch_embed`` (MS-SPS), ``block.{i}.attn`` (SDSA), ``block.{i}.mlp``, ``head``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stc.precision import gemm_precision

from .config import ModelConfig
from .layers import MSSPS, SDTMLP, direct_encode, make_lif
from .precision import PrecisionMixin


def _erode(x: torch.Tensor) -> torch.Tensor:
    """The official ``Erode``: MaxPool3d(kernel (1, 3, 3), stride 1, padding (0, 1, 1)) on a
    5-D tensor, i.e. a 3x3 max over its last two axes for every index of the first three."""
    lead = x.shape[:-2]
    y = F.max_pool2d(x.reshape(-1, 1, *x.shape[-2:]), 3, stride=1, padding=1)
    return y.reshape(*lead, *x.shape[-2:])


class SDSAOfficial(nn.Module):
    """SDSA as the official MS_SSA_Conv computes it, for the two settings stc's fused SDSA
    (stc.nn.attention.SDSA) does not cover: ``dvs_mode`` and parametric LIFs.

    Tokens [T, B, N, D] (membrane values) -> [T, B, N, D], N = grid * grid (row-major):
        s = shortcut_lif(x); Q, K, V = *_lif(*_bn(*_conv(s)))
        dvs_mode: K, V <- Erode over the token grid [.., D, grid, grid]
        KV = K * V per head [T, B, H, N, d]; dvs_mode: KV <- Erode over (N, d)
        A = Q * talking_heads_lif(sum_N KV)  (v_th 0.5); dvs_mode: A <- Erode over (N, d)
        out = proj_bn(proj_conv(A))
    (The Erode axes follow MaxPool3d on the official 5-D layouts: [T, B, C, H, W] for k and v,
    [T, B, heads, N, d] for k*v and q*kv.) Parameter names as stc's SDSA plus
    ``talking_heads_lif`` (a PLIF with its own ``w`` under neuron "plif").
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        D = cfg.embed_dim
        self.num_heads, self.grid, self.dvs = cfg.num_heads, cfg.grid, cfg.dvs_mode
        self.shortcut_lif = make_lif(cfg)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_conv", nn.Linear(D, D, bias=False))
            setattr(self, f"{name}_bn", nn.BatchNorm1d(D))
            setattr(self, f"{name}_lif", make_lif(cfg))
        self.talking_heads_lif = make_lif(cfg, v_th=0.5)
        self.proj_conv = nn.Linear(D, D, bias=True)
        self.proj_bn = nn.BatchNorm1d(D)

    def _grid_erode(self, t: torch.Tensor) -> torch.Tensor:
        T, B, N, D = t.shape
        g = t.transpose(-1, -2).reshape(T, B, D, self.grid, self.grid)
        return _erode(g).reshape(T, B, D, N).transpose(-1, -2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from stc.nn.attention import merge_heads, split_heads

        from .layers import _linear_bn

        s = self.shortcut_lif(x)
        qkv = []
        for name in ("q", "k", "v"):
            y = getattr(self, f"{name}_lif")(_linear_bn(
                s, getattr(self, f"{name}_conv"), getattr(self, f"{name}_bn")))
            if self.dvs and name != "q":
                y = self._grid_erode(y)
            qkv.append(split_heads(y, self.num_heads))
        q, k, v = qkv
        kv = k * v
        if self.dvs:
            kv = _erode(kv)
        kv = self.talking_heads_lif(kv.sum(dim=-2, keepdim=True).contiguous())
        a = q * kv
        if self.dvs:
            a = _erode(a)
        return _linear_bn(merge_heads(a), self.proj_conv, self.proj_bn)


class SDTBlock(nn.Module):
    """MS_Block_Conv: x = x + SDSA(x); x = MLP(x) (MLP holds its own residual).

    Tokens [T, B, N, D] of membrane values in and out. SDSA starts with its membrane-shortcut
    LIF (``attn.shortcut_lif``), as the official MS_SSA_Conv. ``dvs_mode`` or
    ``neuron="plif"`` use :class:`SDSAOfficial`, else stc's fused SDSA.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from stc.nn.attention import SDSA

        if cfg.dvs_mode or cfg.neuron == "plif":
            self.attn = SDSAOfficial(cfg)
        else:
            self.attn = SDSA(cfg.embed_dim, cfg.num_heads, backend=cfg.backend)
        self.mlp = SDTMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return self.mlp(x)


class SpikeDrivenTransformer(PrecisionMixin, nn.Module):
    """SDT-L-D: images -> logits.

    Forward: x [B, C, H, W] (repeated over ``config.T``) or encoded [T, B, C, H, W]
    (``time_first=True``) / [B, T, C, H, W] (``time_first=False``, official layout) ->
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

    def forward(self, x: torch.Tensor, time_first: bool | None = None) -> torch.Tensor:
        cfg = self.config
        x = direct_encode(x, cfg.T, cfg.in_channels, cfg.img_size, time_first)
        with gemm_precision(self.precision, x.device.type):
            y = self.head(self.head_lif(self.forward_features(x))).mean(0)
        return y.float()
