"""Frontend for stc.models (Spikformer / SDT / DSFormer): not mapped yet."""

from __future__ import annotations

from torch import nn

from stc.errors import MappingError


def is_stc_model(model: nn.Module) -> bool:
    """True for models built by stc.models (they carry a ``config`` with an ``arch``)."""
    return hasattr(model, "config") and hasattr(model.config, "arch")


def from_model(model: nn.Module, time_steps: int | None = None):
    """Convert an stc.models network to the IR.

    Raises:
        MappingError: always, for now: transformer models are not mapped to the IR yet.
    """
    raise MappingError(f"{type(model).__name__}: stc.models transformers are not mapped to "
                       "the IR yet; compile nn.Sequential SNNs or NIR graphs")
