"""NIR frontend: nir.read() graphs into the IR, discretised with an explicit dt.

NIR neurons are continuous-time (tau dv/dt = (v_leak - v) + R I; tau_syn dI/dt = -I + w_in S;
spike when v > v_threshold, then v = v_reset; Pedersen et al., Nat. Commun. 15:8122, 2024).
stc discretises them with forward Euler at the given ``dt`` (seconds, the same unit as tau):
    LIF:     v_decay = dt / tau,   v_gain = dt * r / tau        (no synapse state: i = x)
    CubaLIF: i_decay = dt / tau_syn, i_gain = dt * w_in / tau_syn, v as LIF
    IF:      v_decay = 0,          v_gain = dt * r
    LI:      as LIF, but the node outputs v and never fires (a readout)
all as an IR CubaLIF node (per-neuron tensors). With snnTorch's export (tau = dt/(1-beta),
r = tau/dt) this gives back v = beta v + x exactly when the same dt is used.
Multiple edges into one node are summed (an IR Add). Recurrent graphs are not supported.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from stc.errors import MappingError, check_positive
from stc.ir import nodes as ir
from stc.ir.graph import Graph

SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv2d", "LIF", "CubaLIF", "IF", "LI",
             "Flatten", "SumPool2d", "AvgPool2d", "Scale")


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _shape(type_dict) -> tuple[int, ...]:
    v = next(iter(type_dict.values()))
    return tuple(int(s) for s in np.asarray(v).reshape(-1))


def _pair(v) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def load_nir(path: str | Path, dt: float) -> Graph:
    """Read a NIR HDF5 file with ``nir.read`` and convert it (see :func:`from_nir`).

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not NIR. MappingError.
    """
    import nir

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NIR file not found: {p}")
    try:
        g = nir.read(str(p))
    except Exception as e:  # h5py / nir raise many kinds
        raise ValueError(f"{p} is not a readable NIR file: {e}") from None
    return from_nir(g, dt)


def from_nir(nir_graph, dt: float) -> Graph:
    """Convert a ``nir.NIRGraph`` into a verified IR graph.

    Args:
        nir_graph: the graph (from ``nir.read`` or an exporter).
        dt: simulation time step in the graph's time unit (seconds for snnTorch/Norse), > 0.

    Returns:
        Graph with temporal Input(s) (callers feed [B, T, *shape]) and T-first Outputs.

    Raises:
        ValueError: dt <= 0. MappingError: lists every unmappable node (type and name), or a
        recurrent edge, or non-uniform neuron parameter shapes.
    """
    import nir

    dt = check_positive("dt", dt)
    if not isinstance(nir_graph, nir.NIRGraph):
        raise TypeError(f"nir_graph must be a nir.NIRGraph, got {type(nir_graph).__name__}")
    bad = [f"{k} ({type(v).__name__})" for k, v in nir_graph.nodes.items()
           if type(v).__name__ not in SUPPORTED]
    if bad:
        raise MappingError("NIR nodes with no stc mapping: " + ", ".join(sorted(bad))
                           + f"; supported: {', '.join(SUPPORTED)}")
    preds: dict[str, list[str]] = {k: [] for k in nir_graph.nodes}
    for src, dst in nir_graph.edges:
        if src not in preds or dst not in preds:
            raise MappingError(f"NIR edge {src!r} -> {dst!r} names an unknown node")
        preds[dst].append(src)
    g = Graph(metadata={"source": "nir", "dt": dt})
    for name, node in nir_graph.nodes.items():
        ins = list(preds[name])
        safe = name.replace(".", "_")
        if len(ins) > 1:
            g.add(ir.Add(name=f"{safe}__sum", inputs=[s.replace(".", "_") for s in ins]))
            ins = [f"{safe}__sum"]
        ins = [s.replace(".", "_") for s in ins]
        _convert(g, safe, type(node).__name__, node, ins, dt)
    try:
        g.infer_shapes()
    except Exception as e:
        if "cycle" in str(e):
            raise MappingError(f"recurrent NIR graphs are not supported: {e}") from None
        raise MappingError(f"NIR graph does not fit together: {e}") from None
    return g.verify()


def _convert(g: Graph, name: str, kind: str, n, ins: list[str], dt: float) -> None:
    if kind == "Input":
        g.add(ir.Input(name=name, shape=_shape(n.input_type), temporal=True))
    elif kind == "Output":
        g.add(ir.Output(name=name, inputs=ins))
    elif kind in ("Affine", "Linear"):
        w = _t(n.weight)
        if w.dim() != 2:
            raise MappingError(f"NIR node {name!r}: weight must be 2-D, got {tuple(w.shape)}")
        g.add(ir.Linear(name=name, inputs=ins, in_features=w.shape[1],
                        out_features=w.shape[0]), weight=w,
              bias=_t(n.bias) if kind == "Affine" else None)
    elif kind == "Conv2d":
        w = _t(n.weight)
        if isinstance(n.padding, str):
            if n.padding != "valid":
                raise MappingError(f"NIR node {name!r}: padding {n.padding!r} not supported")
            pad = (0, 0)
        else:
            pad = _pair(n.padding)
        b = None if n.bias is None or np.ndim(n.bias) == 0 else _t(n.bias)
        g.add(ir.Conv2d(name=name, inputs=ins, in_channels=w.shape[1] * int(n.groups),
                        out_channels=w.shape[0], kernel_size=(w.shape[2], w.shape[3]),
                        stride=_pair(n.stride), padding=pad, dilation=_pair(n.dilation),
                        groups=int(n.groups)), weight=w, bias=b)
    elif kind in ("SumPool2d", "AvgPool2d"):
        g.add(ir.Pool2d(name=name, inputs=ins, kind="sum" if kind == "SumPool2d" else "avg",
                        kernel_size=_pair(n.kernel_size), stride=_pair(n.stride),
                        padding=_pair(n.padding)))
    elif kind == "Flatten":
        g.add(ir.Flatten(name=name, inputs=ins, start_dim=int(n.start_dim),
                         end_dim=int(n.end_dim)))
    elif kind == "Scale":
        g.add(ir.Scale(name=name, inputs=ins), scale=_t(n.scale))
    else:
        g.add(_neuron(name, kind, n, ins, dt), **_neuron_tensors(name, kind, n, dt))


def _neuron(name, kind, n, ins, dt):
    return ir.CubaLIF(name=name, inputs=ins, has_synapse=kind == "CubaLIF",
                      output="v" if kind == "LI" else "spikes")


def _neuron_tensors(name: str, kind: str, n, dt: float) -> dict[str, torch.Tensor]:
    def arr(attr, default=0.0):
        v = getattr(n, attr, None)
        return _t(default if v is None else v).reshape(-1)

    if kind == "IF":
        r = arr("r")
        out = {"v_decay": torch.zeros_like(r), "v_gain": dt * r, "v_leak": torch.zeros_like(r)}
    else:
        tau = arr("tau_mem" if kind == "CubaLIF" else "tau")
        if bool((tau <= 0).any()):
            raise MappingError(f"NIR node {name!r}: tau must be > 0")
        out = {"v_decay": dt / tau, "v_gain": dt * arr("r") / tau, "v_leak": arr("v_leak")}
        if bool((dt / tau > 1).any()):
            raise MappingError(f"NIR node {name!r}: dt={dt} exceeds tau "
                               f"(min {float(tau.min()):g}); forward Euler would be unstable, "
                               "choose a smaller dt")
    if kind == "CubaLIF":
        ts = arr("tau_syn")
        out["i_decay"] = dt / ts
        out["i_gain"] = dt * arr("w_in", 1.0) / ts
    if kind == "LI":
        out["v_th"] = torch.full_like(out["v_decay"], math.inf)
        out["v_reset"] = torch.zeros_like(out["v_decay"])
    else:
        out["v_th"] = arr("v_threshold")
        out["v_reset"] = arr("v_reset", 0.0)
    return out
