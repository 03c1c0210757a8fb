"""Load official Spikformer / Spike-driven Transformer checkpoints into stc models.

Key map (official name -> stc name; ``{i}`` a block index, ``{bn}`` any of weight, bias,
running_mean, running_var, num_batches_tracked):

source="spikformer" (ZK-Zhou/spikformer imagenet/model.py; model arch "spikformer" or
"dsformer"):
    patch_embed.proj_conv{,1,2,3}.weight, patch_embed.rpe_conv.weight      -> same name
    patch_embed.proj_bn{,1,2,3}.{bn}, patch_embed.rpe_bn.{bn}              -> same name
    block.{i}.attn.{q,k,v}_conv.weight [D, D, 1]   -> block.{i}.attn.{q,k,v}_linear.weight [D, D]
    block.{i}.attn.proj_conv.{weight [D, D, 1], bias} -> block.{i}.attn.proj_linear.*
    block.{i}.attn.{q,k,v,proj}_bn.{bn}            -> same name
    block.{i}.mlp.fc{1,2}_conv.{weight [O, I, 1, 1], bias} -> block.{i}.mlp.fc{1,2}_linear.*
    block.{i}.mlp.fc{1,2}_bn.{bn}                  -> same name
    block.{i}.norm1.*, block.{i}.norm2.*           -> dropped (LayerNorms built, never used)
    head.weight, head.bias                          -> same name
  The CIFAR code (cifar10/model.py: nn.Linear ``*_linear`` layers with biases, stem pooling
  "0011") maps onto itself; build the model with ``qkv_bias=True, pooling="0011"``.

source="sdt" (BICLab/Spike-Driven-Transformer model/spikeformer.py, module/*.py; arch "sdt"):
    patch_embed.*                                   -> as above
    block.{i}.attn.{q,k,v}_conv.weight [D, D, 1, 1] -> block.{i}.attn.{q,k,v}_conv.weight [D, D]
    block.{i}.attn.proj_conv.{weight, bias}         -> same name, weight reshaped to [D, D]
    block.{i}.attn.{q,k,v,proj}_bn.{bn}             -> same name
    block.{i}.attn.talking_heads.weight             -> dropped (Conv1d built, never used)
    block.{i}.mlp.fc{1,2}_conv.{weight, bias}       -> block.{i}.mlp.fc{1,2}_linear.*
    block.{i}.mlp.fc{1,2}_bn.{bn}, head.*           -> same name

1x1 convolution weights [O, I, 1(, 1)] become Linear weights [O, I] (a pure reshape: a 1x1
conv over channels is a Linear over D). Checkpoint wrappers {"state_dict": ...},
{"model": ...} and a "module." prefix (DataParallel) are unwrapped. Keys that no rule maps
(e.g. PLIF time constants, qkv biases of other variants), model keys left unfilled, and shape
mismatches raise ``CheckpointKeyError`` listing every offending key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from stc.errors import StcError, check_choice

SOURCES = ("spikformer", "sdt")

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"

# (official-key regex, stc template). Templates use \1... backreferences.
_RULES: dict[str, list[tuple[str, str]]] = {
    "spikformer": [
        (r"patch_embed\.(proj_conv\d?|rpe_conv)\.weight", r"patch_embed.\1.weight"),
        (rf"patch_embed\.(proj_bn\d?|rpe_bn)\.{_BN}", r"patch_embed.\1.\2"),
        (r"block\.(\d+)\.attn\.([qkv]|proj)_(?:conv|linear)\.(weight|bias)",
         r"block.\1.attn.\2_linear.\3"),
        (rf"block\.(\d+)\.attn\.([qkv]|proj)_bn\.{_BN}", r"block.\1.attn.\2_bn.\3"),
        (r"block\.(\d+)\.mlp\.fc([12])_(?:conv|linear)\.(weight|bias)",
         r"block.\1.mlp.fc\2_linear.\3"),
        (rf"block\.(\d+)\.mlp\.fc([12])_bn\.{_BN}", r"block.\1.mlp.fc\2_bn.\3"),
        (r"head\.(weight|bias)", r"head.\1"),
    ],
    "sdt": [
        (r"patch_embed\.(proj_conv\d?|rpe_conv)\.weight", r"patch_embed.\1.weight"),
        (rf"patch_embed\.(proj_bn\d?|rpe_bn)\.{_BN}", r"patch_embed.\1.\2"),
        (r"block\.(\d+)\.attn\.([qkv]|proj)_conv\.(weight|bias)", r"block.\1.attn.\2_conv.\3"),
        (rf"block\.(\d+)\.attn\.([qkv]|proj)_bn\.{_BN}", r"block.\1.attn.\2_bn.\3"),
        (r"block\.(\d+)\.mlp\.fc([12])_conv\.(weight|bias)", r"block.\1.mlp.fc\2_linear.\3"),
        (rf"block\.(\d+)\.mlp\.fc([12])_bn\.{_BN}", r"block.\1.mlp.fc\2_bn.\3"),
        (r"head\.(weight|bias)", r"head.\1"),
    ],
}

# Official parameters that the official forward never uses.
_DROPPED: dict[str, list[str]] = {
    "spikformer": [r"block\.\d+\.norm[12]\.(weight|bias)"],
    "sdt": [r"block\.\d+\.attn\.talking_heads\.weight"],
}

_ARCH_OF_SOURCE = {"spikformer": ("spikformer", "dsformer"), "sdt": ("sdt",)}


class CheckpointKeyError(StcError, ValueError):
    """An official checkpoint that does not map onto the stc model (keys or shapes)."""


def _unwrap(state_dict: Mapping) -> dict[str, torch.Tensor]:
    sd = state_dict
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if isinstance(sd, Mapping) and wrapper in sd and isinstance(sd[wrapper], Mapping):
            sd = sd[wrapper]
            break
    out = {}
    for key, value in sd.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict must map str -> torch.Tensor; entry {key!r} is "
                            f"{type(value).__name__}")
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def map_official_keys(state_dict: Mapping, source: str
                      ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Rename an official state_dict to stc names (no reshapes, no model needed).

    Returns:
        (mapped {stc_key: tensor}, dropped official keys, unmapped official keys).

    Raises:
        ValueError: unknown source. TypeError: not a str -> tensor mapping.
    """
    check_choice("source", source, SOURCES)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
    rules = [(re.compile(p + r"\Z"), t) for p, t in _RULES[source]]
    dropped_res = [re.compile(p + r"\Z") for p in _DROPPED[source]]
    mapped: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unmapped: list[str] = []
    for key, value in _unwrap(state_dict).items():
        if any(r.match(key) for r in dropped_res):
            dropped.append(key)
            continue
        for rx, template in rules:
            m = rx.match(key)
            if m:
                mapped[m.expand(template)] = value
                break
        else:
            unmapped.append(key)
    return mapped, dropped, unmapped


def _fit(value: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """Reshape 1x1 conv weights [O, I, 1(, 1)] to [O, I]; None if shapes are incompatible."""
    if value.shape == shape:
        return value
    if (value.dim() > len(shape) and tuple(value.shape[:len(shape)]) == tuple(shape)
            and all(s == 1 for s in value.shape[len(shape):])):
        return value.reshape(shape)
    return None


def load_official_state_dict(model: nn.Module, state_dict: Mapping, source: str = "spikformer"
                             ) -> dict[str, list[str]]:
    """Load an official checkpoint's state_dict into an stc model, in place.

    Args:
        model: ``create_model(...)`` of arch "spikformer"/"dsformer" (source "spikformer") or
            "sdt" (source "sdt"), with the checkpoint's embed_dim, depths, mlp_ratio etc.
        state_dict: the official ``model.state_dict()`` (or a checkpoint dict wrapping it).
        source: "spikformer" | "sdt" (key map in the module docstring).

    Returns:
        {"loaded": stc keys filled, "dropped": official keys deliberately ignored}.

    Raises:
        ValueError: unknown source, or source that does not fit ``model.config.arch``.
        CheckpointKeyError: official keys no rule maps, stc keys the checkpoint does not
            fill, or shape mismatches (every offending key is listed).
    """
    check_choice("source", source, SOURCES)
    arch = getattr(getattr(model, "config", None), "arch", None)
    if arch not in _ARCH_OF_SOURCE[source]:
        raise ValueError(f"source={source!r} checkpoints load into archs "
                         f"{_ARCH_OF_SOURCE[source]}; model arch is {arch!r}")
    mapped, dropped, unmapped = map_official_keys(state_dict, source)
    target = model.state_dict()
    problems = []
    if unmapped:
        problems.append(f"official keys with no mapping: {sorted(unmapped)}")
    unknown = sorted(set(mapped) - set(target))
    if unknown:
        problems.append(f"mapped keys absent from the stc model (config mismatch, e.g. depths "
                        f"or qkv bias?): {unknown}")
    missing = sorted(set(target) - set(mapped))
    if missing:
        problems.append(f"stc keys not provided by the checkpoint: {missing}")
    ready: dict[str, torch.Tensor] = {}
    for key in sorted(set(mapped) & set(target)):
        fitted = _fit(mapped[key], target[key].shape)
        if fitted is None:
            problems.append(f"shape mismatch at {key}: checkpoint {tuple(mapped[key].shape)} "
                            f"vs model {tuple(target[key].shape)}")
        else:
            ready[key] = fitted.to(dtype=target[key].dtype)
    if problems:
        raise CheckpointKeyError(f"cannot load {source} checkpoint: " + "; ".join(problems))
    model.load_state_dict(ready, strict=True)
    return {"loaded": sorted(ready), "dropped": sorted(dropped)}
