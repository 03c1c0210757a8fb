"""stc.models: Spikformer, Spike-driven Transformer (v1) and DSFormer; presets, official
checkpoint key maps (``stc.models.keymap``) and per-layer statistics (``stc.models.stats``)."""

from .config import ModelConfig
from .registry import PAPER_PARAMS_M, build_model, create_model, list_presets, preset_config

__all__ = ["PAPER_PARAMS_M", "ModelConfig", "build_model", "create_model", "list_presets",
           "preset_config"]
