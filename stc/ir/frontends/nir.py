"""NIR frontend: nir.read() graphs into the IR, discretised with an explicit dt.

NIR neurons are continuous-time (tau dv/dt = (v_leak - v) + R I; tau_syn dI/dt = -I + w_in S;
spike when v > v_threshold, then v = v_reset; Pedersen et al., Nat. Commun. 15:8122, 2024).
stc discretises them with forward Euler at the given ``dt`` (seconds, the same unit as tau):
    LIF:     v_decay = dt / tau,   v_gain = dt * r / tau        (no synapse state: i = x)
    CubaLIF: i_decay = dt / tau_syn, i_gain = dt * w_in / tau_syn, v as LIF
    IF:      v_decay = 0,          v_gain = dt * r
    LI:      as LIF, but the node outputs v and never fires (a readout)
    CubaLI:  CubaLIF's synapse and LI's membrane, outputs v
    I:       v_decay = 0, v_gain = dt * r, outputs v (an integrator)
    Threshold: s = x > threshold (stateless: v_decay = 1, v_gain = 1)
    Delay:   y[t] = x[t - round(delay / dt)]
all neurons as an IR CubaLIF node (per-neuron tensors). With snnTorch's export (tau =
dt/(1-beta), r = tau/dt) this gives back v = beta v + x exactly when the same dt is used.
Multiple edges into one node are summed (an IR Add). Nested NIRGraph nodes are flattened.

Recurrent graphs: a cycle neuron -> Linear/Affine -> neuron (snnTorch RLeaky / RSynaptic,
NIR's recurrent subgraphs) is read as the neuron's recurrent weights: at every step the
previous step's spikes pass through W_rec (+ bias) and add to the neuron's input (the
discrete-time reading of NIR's cycles that snnTorch's importer and exporter use). Other cycles
are refused, naming their NIR nodes.

Checks: every parameter finite; tau, tau_syn > 0 and dt <= tau, tau_syn (forward Euler
stable); a ``dt`` in the graph's metadata must agree with the given one; a producer named in
the metadata (snnTorch, Norse, Sinabs, Rockpool) gets a warning about the conventions the file
does not record (README "NIR recipes").
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from stc.errors import MappingError, check_positive
from stc.ir import nodes as ir
from stc.ir.graph import Graph

SUPPORTED = ("Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "LIF", "CubaLIF",
             "CubaLI", "IF", "I", "LI", "Threshold", "Delay", "Flatten", "SumPool2d",
             "AvgPool2d", "Scale", "NIRGraph")
NEURONS = ("LIF", "CubaLIF", "CubaLI", "IF", "I", "LI", "Threshold")

PEER_NOTES = {
    "snntorch": "snnTorch: NIR resets to v_reset in the step a neuron fires; snnTorch's "
                "default reset_mechanism='subtract' with reset_delay=True is a different "
                "model the file does not record (export with reset_mechanism='zero', "
                "reset_delay=False); its exporter writes dt = 1e-4",
    "norse": "Norse: writes tau as dt / tau_mem_inv and simulates IF in one step per dt; "
             "read it with Norse's own dt (1e-3 by default)",
    "sinabs": "Sinabs: IAF neurons may emit several spikes per step and its LIF uses the "
              "exact exponential decay; stc emits one spike per step with forward Euler "
              "(use a small dt)",
    "rockpool": "Rockpool: Xylo neurons may emit several spikes per step; stc emits at most "
                "one per step",
}


class NIRWarning(UserWarning):
    """A NIR file whose producer uses conventions the file does not record."""


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _shape(type_dict) -> tuple[int, ...]:
    v = type_dict if not isinstance(type_dict, dict) else next(iter(type_dict.values()))
    return tuple(int(s) for s in np.asarray(v).reshape(-1))


def _pair(v) -> tuple[int, int]:
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _file_node_types(p: Path) -> list[str]:
    """(name, type) strings of the nodes stored in a NIR HDF5 file (for error messages)."""
    import h5py

    out = []

    def walk(grp, prefix):
        for k, node in grp.get("nodes", {}).items():
            t = node["type"][()] if "type" in node else b"?"
            t = t.decode() if isinstance(t, bytes) else str(t)
            out.append((f"{prefix}{k}", t))
            if t == "NIRGraph":
                walk(node, f"{prefix}{k}.")
    try:
        with h5py.File(p, "r") as f:
            walk(f["node"], "")
    except Exception:
        return []
    return out


def load_nir(path: str | Path, dt: float | None) -> Graph:
    """Read a NIR HDF5 file with ``nir.read(type_check=False)`` (stc's own shape inference
    checks the graph; nir 1.0.8's type inference fails on valid grouped or non-square
    convolutions) and convert it (see :func:`from_nir`).

    Raises:
        FileNotFoundError: no such file. ValueError: the file is not NIR (names unknown node
        types when the file has them). MappingError: see :func:`from_nir`.
    """
    import nir

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NIR file not found: {p}")
    try:
        g = nir.read(str(p), type_check=False)
    except Exception as e:  # h5py / nir raise many kinds, some with no message
        known = set(SUPPORTED) | {n for n in dir(nir) if n[:1].isupper()}
        unknown = [f"{k} ({t})" for k, t in _file_node_types(p) if t not in known]
        why = (f"unknown node type(s) {', '.join(unknown)}" if unknown
               else f"{type(e).__name__}: {e}".rstrip(": "))
        raise ValueError(f"{p} is not a readable NIR file: {why} (nir {nir.__version__})") \
            from None
    return from_nir(g, dt)


def _flatten(nir_graph, prefix: str = ""):
    """(nodes {name: node}, edges [(src, dst)]) with nested NIRGraphs inlined: an edge into a
    subgraph goes to its Input node(s), an edge out of it leaves from its Output node(s)."""
    nodes, edges = {}, []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for k, n in nir_graph.nodes.items():
        name = f"{prefix}{k}"
        if type(n).__name__ == "NIRGraph":
            sub_nodes, sub_edges = _flatten(n, f"{name}.")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            entry[name] = [f"{name}.{s}" for s, v in n.nodes.items()
                           if type(v).__name__ == "Input"]
            exit_[name] = [f"{name}.{s}" for s, v in n.nodes.items()
                           if type(v).__name__ == "Output"]
        else:
            nodes[name] = n
    for src, dst in nir_graph.edges:
        s, d = f"{prefix}{src}", f"{prefix}{dst}"
        for a in exit_.get(s, [s]):
            for b in entry.get(d, [d]):
                edges.append((a, b))
    return nodes, edges


def _bypass_inner_io(nodes: dict, edges: list, top: set[str]):
    """Remove the Input/Output nodes of inlined subgraphs (not the top graph's)."""
    for name in [k for k, v in nodes.items() if k not in top and
                 type(v).__name__ in ("Input", "Output")]:
        ins = [s for s, d in edges if d == name]
        outs = [d for s, d in edges if s == name]
        edges[:] = [(s, d) for s, d in edges if name not in (s, d)]
        edges.extend((s, d) for s in ins for d in outs)
        del nodes[name]


def _check_finite(name: str, node) -> None:
    for attr, v in vars(node).items():
        if attr == "metadata" or v is None or isinstance(v, (str, dict)):
            continue
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if not np.isfinite(a).all():
            raise MappingError(f"NIR node {name!r} ({type(node).__name__}): parameter "
                               f"{attr!r} has NaN or infinite values")


def _peer_warnings(nir_graph, nodes: dict) -> None:
    texts = [str(v) for v in (getattr(nir_graph, "metadata", None) or {}).values()]
    texts += [str(k) for k in (getattr(nir_graph, "metadata", None) or {})]
    for n in nodes.values():
        texts += [str(v) for v in (getattr(n, "metadata", None) or {}).values()]
    blob = " ".join(texts).lower()
    for peer, note in PEER_NOTES.items():
        if peer in blob:
            warnings.warn(f"NIR file from {note}", NIRWarning, stacklevel=3)


def _fold_recurrence(nodes: dict, preds: dict[str, list[str]]) -> dict[str, str]:
    """Find cycles neuron -> Linear/Affine -> neuron and fold the synapse into the neuron.
    Returns {neuron: synapse}; removes the synapse from ``nodes``/``preds``."""
    rec = {}
    for k, n in list(nodes.items()):
        if type(n).__name__ not in ("Linear", "Affine") or k not in nodes:
            continue
        src = preds[k]
        if len(src) != 1 or type(nodes.get(src[0])).__name__ not in NEURONS:
            continue
        neu = src[0]
        readers = [d for d, ps in preds.items() if k in ps]
        if readers == [neu] and neu not in rec:
            rec[neu] = k
    for neu, syn in rec.items():
        preds[neu] = [s for s in preds[neu] if s != syn]
        rec[neu] = (syn, nodes.pop(syn))
        del preds[syn]
    return rec


def _cycle(preds: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    for root in preds:
        stack = [(root, iter(preds[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(preds[nxt])))
                path.append(nxt)
    return None


def from_nir(nir_graph, dt: float | None) -> Graph:
    """Convert a ``nir.NIRGraph`` into a verified IR graph.

    Args:
        nir_graph: the graph (from ``nir.read`` or an exporter).
        dt: simulation time step in the graph's time unit (seconds for snnTorch/Norse), > 0;
            None takes the graph metadata's "dt".

    Returns:
        Graph with temporal Input(s) (callers feed [B, T, *shape]) and T-first Outputs;
        metadata {"source": "nir", "dt": dt, "nir_names": {stc name: NIR name}}.

    Raises:
        ValueError: dt missing, <= 0, or different from the graph metadata's dt.
        MappingError: lists every unmappable node (type and name), a cycle that is not a
            neuron's recurrent synapse (names its NIR nodes), NaN/inf parameters, a tau or
            tau_syn <= 0 or below dt, or nodes that do not fit together (NIR names).
    """
    import nir

    if not isinstance(nir_graph, nir.NIRGraph):
        raise TypeError(f"nir_graph must be a nir.NIRGraph, got {type(nir_graph).__name__}")
    meta_dt = (getattr(nir_graph, "metadata", None) or {}).get("dt")
    if dt is None:
        if meta_dt is None:
            raise ValueError("dt is required (dt= / --dt): the NIR graph's metadata has no 'dt' "
                             "(seconds per simulation step, e.g. 1e-3)")
        dt = float(np.asarray(meta_dt).reshape(-1)[0])
    dt = check_positive("dt", dt)
    if meta_dt is not None:
        m = float(np.asarray(meta_dt).reshape(-1)[0])
        if not math.isclose(m, dt, rel_tol=1e-6):
            raise ValueError(f"dt={dt:g} disagrees with the NIR graph's metadata dt={m:g}; "
                             "pass the file's dt (or omit dt to use it)")
    nodes, edges = _flatten(nir_graph)
    bad = [f"{k} ({type(v).__name__})" for k, v in nodes.items()
           if type(v).__name__ not in SUPPORTED]
    if bad:
        raise MappingError("NIR nodes with no stc mapping: " + ", ".join(sorted(bad))
                           + f"; supported: {', '.join(SUPPORTED)}")
    _bypass_inner_io(nodes, edges, set(nir_graph.nodes))
    _peer_warnings(nir_graph, nodes)
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for src, dst in edges:
        if src not in preds or dst not in preds:
            raise MappingError(f"NIR edge {src!r} -> {dst!r} names an unknown node")
        preds[dst].append(src)
    for k, v in nodes.items():
        _check_finite(k, v)
    rec = _fold_recurrence(nodes, preds)
    cyc = _cycle(preds)
    if cyc:
        raise MappingError("NIR graph has a cycle " + " -> ".join(cyc) + "; stc reads "
                           "recurrence only as neuron -> Linear/Affine -> neuron (a "
                           "recurrent weight)")
    names: dict[str, str] = {}
    used: set[str] = set()
    for k in nodes:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", k) or "node"
        s, i = base, 1
        while s in used:
            i += 1
            s = f"{base}_{i}"
        used.add(s)
        names[k] = s
    g = Graph(metadata={"source": "nir", "dt": dt,
                        "nir_names": {v: k for k, v in names.items() if v != k}})
    for k, node in nodes.items():
        ins = [names[s] for s in preds[k]]
        if len(ins) > 1:
            sname = f"{names[k]}__sum"
            while sname in used:
                sname += "_"
            used.add(sname)
            g.add(ir.Add(name=sname, inputs=ins))
            ins = [sname]
        _convert(g, names[k], k, type(node).__name__, node, ins, dt, rec.get(k))
    try:
        g.infer_shapes()
        return g.verify()
    except Exception as e:
        msg = str(e)
        for k, s in names.items():  # NIR name, stc name
            if s != k:
                msg = msg.replace(f"'{s}'", f"'{s}' (NIR {k!r})")
        raise MappingError(f"NIR graph does not fit together: {msg}") from None


def _convert(g: Graph, name: str, nir_name: str, kind: str, n, ins: list[str], dt: float,
             rec) -> None:
    def fail(msg):
        return MappingError(f"NIR node {nir_name!r} ({kind}): {msg}")

    if kind == "Input":
        g.add(ir.Input(name=name, shape=_shape(n.input_type), temporal=True))
    elif kind == "Output":
        g.add(ir.Output(name=name, inputs=ins))
    elif kind in ("Affine", "Linear"):
        w = _t(n.weight)
        if w.dim() != 2:
            raise fail(f"weight must be 2-D, got {tuple(w.shape)}")
        b = None
        if kind == "Affine" and n.bias is not None:
            b = _t(n.bias).reshape(-1).expand(w.shape[0]).contiguous()
        g.add(ir.Linear(name=name, inputs=ins, in_features=w.shape[1],
                        out_features=w.shape[0]), weight=w, bias=b)
    elif kind in ("Conv1d", "Conv2d"):
        w = _t(n.weight)
        nd = 1 if kind == "Conv1d" else 2
        if w.dim() != 2 + nd:
            raise fail(f"weight must be {2 + nd}-D, got {tuple(w.shape)}")
        groups = int(np.asarray(n.groups).reshape(-1)[0])
        ksz = tuple(w.shape[2:])
        dil = _pair(n.dilation)[:nd]
        if isinstance(n.padding, str):
            if n.padding == "valid":
                pad = (0,) * nd
            elif n.padding == "same" and all(k % 2 == 1 for k in ksz):
                pad = tuple(d * (k - 1) // 2 for d, k in zip(dil, ksz))
            else:
                raise fail(f"padding {n.padding!r} not supported (valid, or same with odd "
                           "kernels)")
        else:
            pad = _pair(n.padding)[:nd]
        # a scalar (0-d) bias is one value for every output channel
        b = None if n.bias is None else _t(n.bias).reshape(-1).expand(w.shape[0]).contiguous()
        if kind == "Conv1d":
            g.add(ir.Conv1d(name=name, inputs=ins, in_channels=w.shape[1] * groups,
                            out_channels=w.shape[0], kernel_size=int(ksz[0]),
                            stride=_pair(n.stride)[0], padding=pad[0], dilation=dil[0],
                            groups=groups), weight=w, bias=b)
        else:
            g.add(ir.Conv2d(name=name, inputs=ins, in_channels=w.shape[1] * groups,
                            out_channels=w.shape[0], kernel_size=ksz,
                            stride=_pair(n.stride), padding=pad, dilation=dil,
                            groups=groups), weight=w, bias=b)
    elif kind in ("SumPool2d", "AvgPool2d"):
        g.add(ir.Pool2d(name=name, inputs=ins, kind="sum" if kind == "SumPool2d" else "avg",
                        kernel_size=_pair(n.kernel_size), stride=_pair(n.stride),
                        padding=_pair(n.padding)))
    elif kind == "Flatten":
        g.add(ir.Flatten(name=name, inputs=ins, start_dim=int(n.start_dim),
                         end_dim=int(n.end_dim)))
    elif kind == "Scale":
        g.add(ir.Scale(name=name, inputs=ins), scale=_t(n.scale))
    elif kind == "Delay":
        d = np.asarray(n.delay, dtype=np.float64).reshape(-1)
        if (d < 0).any():
            raise fail("delay must be >= 0")
        steps = np.round(d / dt)
        if not np.allclose(steps * dt, d, rtol=1e-4, atol=1e-12):
            raise fail(f"delay {d.tolist()} is not a whole number of steps of dt={dt:g}")
        g.add(ir.Delay(name=name, inputs=ins), steps=torch.as_tensor(steps.astype(np.int32)))
    else:
        tensors = _neuron_tensors(nir_name, kind, n, dt)
        if rec is not None:
            syn_name, syn = rec
            w = _t(syn.weight)
            tensors["w_rec"] = w
            if type(syn).__name__ == "Affine" and syn.bias is not None:
                tensors["b_rec"] = _t(syn.bias).reshape(-1).expand(w.shape[0]).contiguous()
            g.metadata.setdefault("recurrent", {})[name] = syn_name
        g.add(ir.CubaLIF(name=name, inputs=ins, has_synapse=kind in ("CubaLIF", "CubaLI"),
                         output="v" if kind in ("LI", "CubaLI", "I") else "spikes"),
              **tensors)


def _neuron_tensors(name: str, kind: str, n, dt: float) -> dict[str, torch.Tensor]:
    def arr(attr, default=0.0):
        v = getattr(n, attr, None)
        return _t(default if v is None else v).reshape(-1)

    def fail(msg):
        return MappingError(f"NIR node {name!r} ({kind}): {msg}")

    if kind in ("IF", "I"):
        r = arr("r")
        out = {"v_decay": torch.zeros_like(r), "v_gain": dt * r, "v_leak": torch.zeros_like(r)}
    elif kind == "Threshold":
        th = arr("threshold")
        return {"v_decay": torch.ones_like(th), "v_gain": torch.ones_like(th),
                "v_leak": torch.zeros_like(th), "v_th": th, "v_reset": torch.zeros_like(th)}
    else:
        tau = arr("tau_mem" if kind in ("CubaLIF", "CubaLI") else "tau")
        if bool((tau <= 0).any()):
            raise fail("tau must be > 0")
        out = {"v_decay": dt / tau, "v_gain": dt * arr("r") / tau, "v_leak": arr("v_leak")}
        if bool((dt / tau > 1).any()):
            raise fail(f"dt={dt} exceeds tau (min {float(tau.min()):g}); forward Euler would "
                       "be unstable, choose a smaller dt")
    if kind in ("CubaLIF", "CubaLI"):
        ts = arr("tau_syn")
        if bool((ts <= 0).any()):
            raise fail(f"tau_syn must be > 0, got min {float(ts.min()):g}")
        if bool((dt / ts > 1).any()):
            raise fail(f"dt={dt} exceeds tau_syn (min {float(ts.min()):g}); forward Euler "
                       "would be unstable, choose a smaller dt")
        out["i_decay"] = dt / ts
        out["i_gain"] = dt * arr("w_in", 1.0) / ts
    if kind in ("LI", "CubaLI", "I"):
        out["v_th"] = torch.full_like(out["v_decay"], math.inf)
        out["v_reset"] = torch.zeros_like(out["v_decay"])
    else:
        out["v_th"] = arr("v_threshold")
        out["v_reset"] = arr("v_reset", 0.0)
    return out
