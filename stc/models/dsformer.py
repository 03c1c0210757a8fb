"""DSFormer: the Spikformer body with stc's sparse spatio-temporal spike attention.

No spiking paper named DSFormer exists; stc defines its attention in
shared/reference/attention.md (``stc.nn.attention.DSFormerAttention``). With window_size = 1
and sparse_ratio = 1 the model equals Spikformer.
"""

from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .spikformer import Spikformer


def _dsformer_attention(cfg: ModelConfig) -> nn.Module:
    from stc.nn.attention import DSFormerAttention

    return DSFormerAttention(cfg.embed_dim, cfg.num_heads, spike_mode=cfg.spike_mode,
                             window_size=cfg.window_size, sparse_ratio=cfg.sparse_ratio,
                             scale=cfg.attn_scale, backend=cfg.backend,
                             qkv_bias=cfg.qkv_bias)


class DSFormer(Spikformer):
    """DSFormer-L-D: images [B, C, H, W] or [T, B, C, H, W] -> logits [B, num_classes].

    Same stem, MLP, residuals and head as ``Spikformer``; each block's attention is
    DSFormerAttention(window_size, sparse_ratio, spike_mode, scale) from the config.

    Raises:
        TypeError / ValueError: as ``Spikformer``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, attn_factory=_dsformer_attention)
