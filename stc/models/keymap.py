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
    pos_embed, norm.* (cifar10dvs/model.py)         -> dropped (built, never used); that code's
        SSA scale is 0.25: build with attn_scale=0.25 and pass variant="cifar10dvs"
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
    *_lif.w (spike_mode="plif", ParametricLIF)      -> same name (model neuron="plif");
    block.{i}.attn.attn_lif.w                       -> dropped (built, never used)
  CIFAR10-DVS (dvs_mode=True): same keys; build the model with dvs_mode=True and pass
  variant="cifar10dvs" (the weights cannot show dvs_mode).

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
        # spike_mode="plif": each ParametricLIF's w (1/tau = sigmoid(w)), same module names
        (r"((?:patch_embed|block\.\d+\.(?:attn|mlp))\.\w+_lif\d?|head_lif)\.w", r"\1.w"),
    ],
}

# Official parameters that the official forward never uses.
_DROPPED: dict[str, list[str]] = {
    "spikformer": [r"block\.\d+\.norm[12]\.(weight|bias)",
                   # CIFAR10-DVS code: a positional embedding and a final LayerNorm that its
                   # forward never applies
                   r"pos_embed", r"norm\.(weight|bias)"],
    "sdt": [r"block\.\d+\.attn\.talking_heads\.weight", r"block\.\d+\.attn\.attn_lif\.w"],
}

# Settings the weights cannot show, per known checkpoint family (official training scripts).
VARIANTS = ("cifar10dvs", "custom")
_DVS_NEEDS = {
    "spikformer": "attn_scale=0.25 (its SSA scale), and the script's num_heads (16), T (16), "
                  "img_size 128, in_channels 2, pooling '1111'",
    "sdt": "dvs_mode=True (four Erode max-pools in SDSA), and the config's num_heads, T, "
           "img_size, in_channels 2, pooling",
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


def _looks_dvs(sd: Mapping[str, torch.Tensor]) -> str | None:
    """Why an (unwrapped) official state_dict looks like an event-camera checkpoint, or None."""
    w = sd.get("patch_embed.proj_conv.weight")
    if w is not None and w.dim() == 4 and w.shape[1] == 2:
        return "its first conv reads 2 channels (event polarities)"
    if "pos_embed" in sd:
        return "it has the CIFAR10-DVS code's pos_embed"
    return None


def _check_variant(model: nn.Module, sd: Mapping, source: str, variant: str | None) -> None:
    if variant is not None:
        check_choice("variant", variant, VARIANTS)
    why = _looks_dvs(sd)
    cfg = model.config
    if why and variant is None:
        raise CheckpointKeyError(
            f"this {source} checkpoint looks like a CIFAR10-DVS one ({why}); its weights "
            f"cannot show settings the official script sets: build the model with "
            f"{_DVS_NEEDS[source]} and pass variant='cifar10dvs' (or variant='custom' to "
            "load it with the model's config as it is)")
    if variant == "cifar10dvs":
        if source == "spikformer" and cfg.attn_scale != 0.25:
            raise CheckpointKeyError(f"variant='cifar10dvs': the official Spikformer "
                                     f"CIFAR10-DVS SSA scale is 0.25; the model has "
                                     f"attn_scale={cfg.attn_scale}")
        if source == "sdt" and not cfg.dvs_mode:
            raise CheckpointKeyError("variant='cifar10dvs': the official SDT CIFAR10-DVS "
                                     "script trains with dvs_mode=True; build the model with "
                                     "dvs_mode=True")


def load_official_state_dict(model: nn.Module, state_dict: Mapping, source: str = "spikformer",
                             *, variant: str | None = None) -> dict[str, list[str]]:
    """Load an official checkpoint's state_dict into an stc model, in place.

    Args:
        model: ``create_model(...)`` of arch "spikformer"/"dsformer" (source "spikformer") or
            "sdt" (source "sdt"), with the checkpoint's embed_dim, depths, mlp_ratio etc.
        state_dict: the official ``model.state_dict()`` (or a checkpoint dict wrapping it).
        source: "spikformer" | "sdt" (key map in the module docstring).
        variant: None, "cifar10dvs" or "custom". A checkpoint that looks like an
            event-camera one (2 input channels, or Spikformer's pos_embed) is refused with
            variant None, because its weights cannot show settings the official script sets
            (Spikformer: attn_scale 0.25; SDT: dvs_mode); "cifar10dvs" checks the model's
            config against them, "custom" loads with the config as it is.

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
    _check_variant(model, _unwrap(state_dict), source, variant)
    mapped, dropped, unmapped = map_official_keys(state_dict, source)
    target = model.state_dict()
    problems = []
    if unmapped:
        problems.append(f"official keys with no mapping: {sorted(unmapped)}")
    unknown = sorted(set(mapped) - set(target))
    if unknown:
        hint = (" (ParametricLIF w: build the model with neuron='plif')"
                if any(k.endswith("_lif.w") for k in unknown) else "")
        problems.append(f"mapped keys absent from the stc model (config mismatch, e.g. depths "
                        f"or qkv bias?){hint}: {unknown}")
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
