"""Named presets and ``create_model``.

ImageNet presets (224 x 224, 3 channels, 1000 classes, T = 4, patch 16 = four pooled stem
stages) are named as in the papers: Spikformer-L-D (Zhou et al., ICLR 2023, Table 3) and
SDT-L-D (Yao et al., NeurIPS 2023, Table 2). Head counts follow the official configs
(SDT: 8 everywhere). ``*_tiny`` presets are for 8 x 8 digits (1 channel, 10 classes).
"""

from __future__ import annotations

from torch import nn

from .config import ModelConfig

_IMAGENET = dict(img_size=224, in_channels=3, num_classes=1000, T=4, pooling="1111")
_DIGITS = dict(img_size=8, in_channels=1, num_classes=10, T=4, pooling="0001")

PRESETS: dict[str, dict] = {
    "spikformer_8_384": dict(arch="spikformer", embed_dim=384, num_heads=12, depths=8,
                             **_IMAGENET),
    "spikformer_8_512": dict(arch="spikformer", embed_dim=512, num_heads=8, depths=8,
                             **_IMAGENET),
    "spikformer_8_768": dict(arch="spikformer", embed_dim=768, num_heads=12, depths=8,
                             **_IMAGENET),
    "sdt_8_384": dict(arch="sdt", embed_dim=384, num_heads=8, depths=8, **_IMAGENET),
    "sdt_6_512": dict(arch="sdt", embed_dim=512, num_heads=8, depths=6, **_IMAGENET),
    "sdt_8_512": dict(arch="sdt", embed_dim=512, num_heads=8, depths=8, **_IMAGENET),
    "sdt_10_512": dict(arch="sdt", embed_dim=512, num_heads=8, depths=10, **_IMAGENET),
    "sdt_8_768": dict(arch="sdt", embed_dim=768, num_heads=8, depths=8, **_IMAGENET),
    "dsformer_8_384": dict(arch="dsformer", embed_dim=384, num_heads=12, depths=8,
                           window_size=2, sparse_ratio=0.5, **_IMAGENET),
    "spikformer_tiny": dict(arch="spikformer", embed_dim=64, num_heads=4, depths=1,
                            mlp_ratio=2.0, **_DIGITS),
    "sdt_tiny": dict(arch="sdt", embed_dim=64, num_heads=4, depths=1, mlp_ratio=2.0,
                     **_DIGITS),
    "dsformer_tiny": dict(arch="dsformer", embed_dim=64, num_heads=4, depths=1,
                          mlp_ratio=2.0, window_size=2, sparse_ratio=0.5, **_DIGITS),
}

# Parameter counts reported by the papers (millions), for tests and documentation.
PAPER_PARAMS_M = {
    "spikformer_8_384": 16.81, "spikformer_8_512": 29.68, "spikformer_8_768": 66.34,
    "sdt_8_384": 16.81, "sdt_6_512": 23.27, "sdt_8_512": 29.68, "sdt_10_512": 36.01,
    "sdt_8_768": 66.34,
}


def list_presets() -> list[str]:
    """Names accepted by ``create_model``, sorted."""
    return sorted(PRESETS)


def preset_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of preset ``name`` with ``overrides`` applied.

    Raises:
        ValueError: unknown preset name or override field, or an invalid resulting config.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(list_presets())}")
    return ModelConfig.from_dict({**PRESETS[name], **overrides})


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the model class for ``config.arch`` (Spikformer, SpikeDrivenTransformer or
    DSFormer); the model maps [B, C, H, W] or [T, B, C, H, W] to logits [B, num_classes].

    Raises:
        TypeError: config is not a ModelConfig.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    if config.arch == "spikformer":
        from .spikformer import Spikformer

        return Spikformer(config)
    if config.arch == "sdt":
        from .sdt import SpikeDrivenTransformer

        return SpikeDrivenTransformer(config)
    from .dsformer import DSFormer

    return DSFormer(config)


def create_model(name: str, *, precision: str = "fp32", **overrides) -> nn.Module:
    """Build preset ``name`` (see ``list_presets()``) with config fields overridden.

    Example: ``create_model("spikformer_tiny", backend="torch")``. The result maps images
    [B, C, H, W] (or [T, B, C, H, W]) to logits [B, num_classes] (float32); ``model.config``
    is its ModelConfig. ``precision`` ("fp32" | "tf32" | "bf16", stc.precision) is the GEMM
    precision of its forward; change it later with ``model.set_precision``.

    Raises:
        ValueError: unknown name, field or precision, invalid config (e.g. embed_dim %
            num_heads != 0).
    """
    return build_model(preset_config(name, **overrides)).set_precision(precision)
