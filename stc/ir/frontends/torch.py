"""Torch frontend: a module walk of nn.Sequential-like SNNs into the IR.

Supported layers (nested nn.Sequential is flattened): torch.nn Conv2d, Linear, BatchNorm1d,
BatchNorm2d, MaxPool2d, AvgPool2d, Flatten, Identity/Dropout (skipped in inference) and the
stc.nn neurons LIF, IF and CubaLIF (hard reset to 0; as an IR CubaLIF with per-step decays
1/tau, so it matches stc.nn.CubaLIF up to float rounding at the threshold).
Semantics are multi-step: the network sees [T, B, ...]; stateless
layers apply at every timestep and neurons integrate over T (SpikingJelly multi-step mode).
A custom nn.Module subclass (not an nn.Sequential) is traced with torch.fx when its forward is
a chain of supported layers, ``torch.flatten`` / ``x.flatten`` included; any other construct
raises MappingError naming it and what to use instead (nn.Sequential or
stc.nn.MultiStepSequential of the supported layers).
The built graph is Input -> Repeat(T) -> layers -> TimeMean -> Output, i.e. a static input
[B, *input_shape] is presented at every step (direct encoding) and the output is the mean
over T (rate readout), as in Spikformer/SDT.
"""

from __future__ import annotations

import torch
from torch import nn

from stc.errors import MappingError
from stc.ir import nodes as ir
from stc.ir.graph import Graph


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _leaves(module: nn.Module, prefix: str = ""):
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}{name}.")
    elif _is_custom(module):
        for name, child in _fx_chain(module):
            yield from _leaves(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip(".") or type(module).__name__.lower(), module


def _is_custom(m: nn.Module) -> bool:
    """A user's nn.Module subclass (not a torch.nn / stc.nn layer, not a Sequential)."""
    mod = type(m).__module__
    return not (mod.startswith("torch.") or mod.startswith("stc.")) and bool(
        list(m.children()))


USE_INSTEAD = ("build it as nn.Sequential (or stc.nn.MultiStepSequential) of Conv2d, Linear, "
               "BatchNorm, MaxPool2d/AvgPool2d, Flatten, Dropout and stc.nn LIF/IF/CubaLIF")


def _fx_chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, layer) chain of a custom module's forward, traced with torch.fx.

    Raises:
        MappingError: the forward is not traceable, branches, or uses a construct other than
            submodule calls and flatten (named, with what to use instead).
    """
    import torch.fx as fx

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):  # our layers are leaves; user modules traced
            return not _is_custom(m) and not isinstance(m, nn.Sequential) or \
                super().is_leaf_module(m, qualname)

    label = f"{type(model).__name__}"
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # torch.fx raises TraceError, TypeError, ... on dynamic code
        raise MappingError(f"{label}: torch.fx cannot trace its forward ({type(e).__name__}: "
                           f"{e}); {USE_INSTEAD}") from None
    chain: list[tuple[str, nn.Module]] = []
    prev = None
    for node in graph.nodes:
        if node.op == "placeholder":
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise MappingError(f"{label}: its output is not the end of one layer chain; "
                                   f"{USE_INSTEAD}")
            break
        args = [a for a in node.args if isinstance(a, fx.Node)]
        if args != [prev] or len(node.users) > 1:
            raise MappingError(f"{label}: node {node.name!r} branches or merges values "
                               f"(residuals and concatenation have no IR form here); "
                               f"{USE_INSTEAD}")
        if node.op == "call_module":
            chain.append((node.target, model.get_submodule(node.target)))
        elif (node.op == "call_function" and node.target is torch.flatten) or (
                node.op == "call_method" and node.target == "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            chain.append((node.name, nn.Flatten(int(start), int(end))))
        else:
            what = getattr(node.target, "__name__", str(node.target))
            raise MappingError(f"{label}: {node.op} {what!r} (node {node.name!r}) has no IR "
                               f"mapping; use the module form (e.g. nn.Flatten, stc.nn.LIF) "
                               f"or {USE_INSTEAD}")
        prev = node
    return chain


def from_torch(model: nn.Module, input_shape: tuple[int, ...], time_steps: int = 4,
               *, temporal_input: bool = False, readout: str = "mean") -> Graph:
    """Convert ``model`` to a verified IR graph.

    Args:
        model: an nn.Sequential (possibly nested) of supported layers, in eval mode.
        input_shape: per-sample input shape, e.g. (1, 28, 28) or (64,) (no T, no B).
        time_steps: T for the Repeat encoder (ignored when ``temporal_input``).
        temporal_input: the caller feeds [B, T, *input_shape] instead (no encoder).
        readout: "mean" (TimeMean before the Output) or "spikes" (T-first output).

    Returns:
        Graph with tensors copied from the model (weights, biases, BN statistics).

    Raises:
        TypeError: model is not an nn.Module. ValueError: bad input_shape / time_steps.
        MappingError: listing every layer that has no IR mapping.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be positive ints without T or B, got {input_shape}")
    if int(time_steps) < 1:
        raise ValueError(f"time_steps must be >= 1, got {time_steps}")
    if readout not in ("mean", "spikes"):
        raise ValueError(f"readout must be 'mean' or 'spikes', got {readout!r}")
    from stc.ir.shapes import infer_shape

    g = Graph(metadata={"source": "torch", "model": type(model).__name__})
    prev = g.add(ir.Input(name="input", shape=shape, temporal=temporal_input))
    if not temporal_input:
        prev = g.add(ir.Repeat(name="encoder", inputs=["input"], shape=shape,
                               time_steps=int(time_steps)))
    bad: list[str] = []
    multistep = type(model).__name__ == "MultiStepSequential"
    for name, m in _leaves(model):
        if isinstance(m, nn.Flatten) and m.start_dim >= 2 and not multistep:
            import warnings

            warnings.warn(
                f"{name}: nn.Flatten(start_dim={m.start_dim}) is read with batch-first dims "
                "([B, ...], the dims of one timestep), so it keeps per-sample axes; if it was "
                "written for [T, B, ...] tensors, use stc.nn.MultiStepSequential with "
                "nn.Flatten() instead (eager and compiled outputs then agree)",
                UserWarning, stacklevel=2)
        node, tensors = _map(f"{type(m).__name__.lower()}_{name.replace('.', '_')}", m)
        if node is False:
            continue
        if node is None:
            bad.append(f"{name} ({type(m).__name__})")
            continue
        node.inputs = [prev.name]
        g.add(node, **tensors)
        if not bad:
            node.shape = tuple(infer_shape(g, node, [tuple(prev.shape)]))
        prev = node
    if bad:
        raise MappingError("layers with no IR mapping: " + ", ".join(bad))
    if readout == "mean":
        prev = g.add(ir.TimeMean(name="time_mean", inputs=[prev.name], shape=prev.shape))
    g.add(ir.Output(name="output", inputs=[prev.name], shape=prev.shape))
    return g.verify()


def _map(name: str, m: nn.Module):
    """(node, tensors) for a layer; (False, {}) to skip it; (None, {}) when unsupported."""
    cls = type(m).__name__
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return False, {}
    if isinstance(m, nn.Linear):
        return ir.Linear(name=name, in_features=m.in_features, out_features=m.out_features), \
            {"weight": m.weight, "bias": m.bias}
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            return None, {}
        return ir.Conv2d(name=name, in_channels=m.in_channels, out_channels=m.out_channels,
                         kernel_size=_pair(m.kernel_size), stride=_pair(m.stride),
                         padding=_pair(m.padding), dilation=_pair(m.dilation),
                         groups=m.groups), {"weight": m.weight, "bias": m.bias}
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if m.running_mean is None:
            return None, {}
        return ir.BatchNorm(name=name, num_features=m.num_features, eps=float(m.eps)), \
            {"running_mean": m.running_mean, "running_var": m.running_var,
             "weight": m.weight, "bias": m.bias}
    if isinstance(m, nn.MaxPool2d):
        if m.dilation not in (1, (1, 1)) or m.ceil_mode:
            return None, {}
        return ir.Pool2d(name=name, kind="max", kernel_size=_pair(m.kernel_size),
                         stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding)), {}
    if isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or not m.count_include_pad or m.divisor_override:
            return None, {}
        return ir.Pool2d(name=name, kind="avg", kernel_size=_pair(m.kernel_size),
                         stride=_pair(m.stride or m.kernel_size), padding=_pair(m.padding)), {}
    if isinstance(m, nn.Flatten):
        # torch dims count the batch axis; IR dims are per sample
        s = m.start_dim - 1 if m.start_dim > 0 else m.start_dim
        e = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
        return ir.Flatten(name=name, start_dim=s, end_dim=e), {}
    if cls == "LIF" and hasattr(m, "tau") and hasattr(m, "v_th"):
        return ir.LIF(name=name, tau=float(m.tau), v_th=float(m.v_th), v_reset=m.v_reset,
                      decay_input=bool(m.decay_input)), {}
    if cls == "IF" and hasattr(m, "v_th"):
        return ir.IF(name=name, v_th=float(m.v_th), v_reset=getattr(m, "v_reset", 0.0)), {}
    if cls == "CubaLIF" and hasattr(m, "tau_syn") and m.v_reset is not None:
        # stc.nn.CubaLIF (dt = 1 step): I += (X - I) / tau_syn; H = V + (v_leak - V + I) / tau_mem
        one = torch.ones(1)
        a, b = 1.0 / m.tau_syn, 1.0 / m.tau_mem
        node = ir.CubaLIF(name=name, has_synapse=True, fire_ge=True)
        if m.v_reset != 0.0:  # stc.nn.CubaLIF starts V at v_reset; the IR node starts at 0
            return None, {}
        return node, {"i_decay": one * a, "i_gain": one * a, "v_decay": one * b,
                      "v_gain": one * b, "v_leak": one * m.v_leak, "v_th": one * m.v_th,
                      "v_reset": one * m.v_reset}
    return None, {}
