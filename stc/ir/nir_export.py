"""NIR writer: an stc float graph as a ``nir.NIRGraph`` whose equations, integrated with
forward Euler at the exported ``dt``, reproduce stc's discrete dynamics.

NIR neurons are continuous time (Pedersen et al., Nat. Commun. 15:8122, 2024):
tau dv/dt = (v_leak - v) + r I, spike when v > v_threshold, then v = v_reset. One Euler step
of length dt is v <- v (1 - dt / tau) + (dt / tau) v_leak + (dt r / tau) I. So, per step:
    stc LIF (SpikingJelly / stc.nn.LIF, tau in steps, hard reset):
        H = V (1 - 1/tau) + v_reset / tau + X / tau   (decay_input; X without it)
      -> NIR LIF tau = tau_steps * dt, v_leak = v_reset, r = 1 (decay_input) or tau_steps.
    stc IF (hard reset): H = V + X -> NIR IF r = 1 / dt.
    IR CubaLIF (per-neuron decays, e.g. read from NIR): tau = dt / v_decay, r = v_gain tau / dt;
      with a synapse tau_syn = dt / i_decay, w_in = i_gain tau_syn / dt; output "v" -> LI /
      CubaLI (or I when v_decay = 0); a recurrent weight -> a Linear/Affine cycle.
The graph records ``metadata["dt"]``; importers must step with that dt (snnTorch's importer
hard-codes 1e-4 s, the default here). stc fires at H >= v_th where NIR fires at v > v_th: the
two differ only when the membrane lands exactly on the threshold.

Not expressible in NIR, refused with the node named: reset by subtraction (soft reset),
spiking attention (SpikeAttention, AttentionCore), max pooling, BatchNorm left unfolded,
Concat, token ops; a static input's Repeat encoder and a TimeMean readout are dropped (NIR
graphs are per step: present the input at every step and average the output yourself) and
listed in ``metadata["stc_dropped"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stc.errors import MappingError

from .graph import Graph

REFUSED = {
    "SpikeAttention": "spiking self-attention has no NIR node (NIR has no product of two "
                      "spike trains)",
    "AttentionCore": "spiking self-attention has no NIR node (NIR has no product of two "
                     "spike trains)",
    "ToTokens": "token layout ops have no NIR node",
    "TokenMean": "token layout ops have no NIR node",
    "Concat": "NIR has no concatenation node",
    "LoihiCubaLIF": "export the float graph (fixed-point Loihi neurons are not NIR)",
    "BatchNorm": "fold BatchNorm first (stc.passes.fold_batchnorm)",
}


def _np(g: Graph, node, slot) -> np.ndarray | None:
    t = g.param(node, slot)
    return None if t is None else t.detach().double().cpu().numpy()


def _full(g: Graph, node, slot, n: int) -> np.ndarray:
    a = _np(g, node, slot).reshape(-1)
    return np.broadcast_to(a, (n,)).copy() if a.size == 1 else a


def to_nir(graph: Graph, dt: float = 1e-4):
    """Convert a float stc graph into a ``nir.NIRGraph`` (see the module docstring).

    Args:
        graph: a verified float graph (BatchNorm is folded here when it follows a synapse).
        dt: seconds per stc timestep written into the graph (> 0).

    Returns:
        nir.NIRGraph with metadata {"dt": dt, "source": "stc", "stc_dropped": [...]}.

    Raises:
        ValueError: dt <= 0. MappingError: nodes NIR cannot express, each named with why.
    """
    import nir

    from stc.errors import check_positive
    from stc.passes import fold_batchnorm

    dt = check_positive("dt", dt)
    g, _ = fold_batchnorm(graph.copy().verify())
    bad = []
    for n in g.nodes:
        why = REFUSED.get(n.OP)
        if n.OP in ("LIF", "IF") and n.v_reset is None:
            why = "reset by subtraction (soft reset) has no NIR form (NIR resets to v_reset)"
        elif n.OP in ("LIF", "IF") and n.v_reset != 0.0:
            why = (f"v_reset={n.v_reset}: stc starts the membrane at v_reset, NIR at 0")
        if n.OP == "Pool2d" and n.kind == "max":
            why = "max pooling has no NIR node"
        if n.OP == "Input" and n.temporal is False and n.datatype not in ("FP32", "FP64"):
            why = f"input datatype {n.datatype}"
        if why:
            bad.append(f"{n.name!r} ({n.OP}): {why}")
    if bad:
        raise MappingError("graph cannot be written as NIR: " + "; ".join(bad))
    # bypass Repeat / TimeMean / Add: NIR sums every edge into a node
    alias: dict[str, list[str]] = {}
    dropped = []

    def src(name: str) -> list[str]:
        return alias.get(name, [name])

    nodes: dict[str, object] = {}
    edges: list[tuple[str, str]] = []
    for n in g.nodes:
        ins = [s for i in n.inputs for s in src(i)]
        op = n.OP
        shape = np.array(n.shape)
        if op in ("Repeat", "TimeMean"):
            alias[n.name] = ins
            dropped.append(f"{n.name} ({op})")
            continue
        if op == "Add":
            alias[n.name] = ins
            continue
        if op == "Input":
            nodes[n.name] = nir.Input(input_type={"input": shape})
        elif op == "Output":
            nodes[n.name] = nir.Output(output_type={"output": shape})
        elif op == "Linear":
            w, b = _np(g, n, "weight"), _np(g, n, "bias")
            nodes[n.name] = (nir.Linear(weight=w) if b is None else
                             nir.Affine(weight=w, bias=b))
        elif op == "Conv2d":
            w, b = _np(g, n, "weight"), _np(g, n, "bias")
            in_hw = tuple(g.node(n.inputs[0]).shape[1:])
            nodes[n.name] = nir.Conv2d(
                input_shape=in_hw, weight=w, stride=np.array(n.stride),
                padding=np.array(n.padding), dilation=np.array(n.dilation), groups=n.groups,
                bias=np.zeros(w.shape[0]) if b is None else b)
        elif op == "Conv1d":
            w, b = _np(g, n, "weight"), _np(g, n, "bias")
            nodes[n.name] = nir.Conv1d(
                input_shape=g.node(n.inputs[0]).shape[1], weight=w, stride=n.stride,
                padding=n.padding, dilation=n.dilation, groups=n.groups,
                bias=np.zeros(w.shape[0]) if b is None else b)
        elif op == "Pool2d":
            cls = nir.SumPool2d if n.kind == "sum" else nir.AvgPool2d
            nodes[n.name] = cls(kernel_size=np.array(n.kernel_size),
                                stride=np.array(n.stride), padding=np.array(n.padding))
        elif op == "Flatten":
            nodes[n.name] = nir.Flatten(input_type={"input": np.array(g.node(
                n.inputs[0]).shape)}, start_dim=n.start_dim, end_dim=n.end_dim)
        elif op == "Scale":
            s = _np(g, n, "scale")
            s = np.full(n.shape, n.factor) if s is None else np.broadcast_to(
                s * n.factor, n.shape).copy()
            nodes[n.name] = nir.Scale(scale=s)
        elif op == "Delay":
            nodes[n.name] = nir.Delay(delay=_full(g, n, "steps", int(np.prod(n.shape))) * dt)
        elif op in ("LIF", "IF", "CubaLIF"):
            k = int(np.prod(n.shape))
            rec = _neuron(nir, g, n, k, dt, nodes)
            if rec is not None:
                edges.extend(rec)
        else:
            raise MappingError(f"graph cannot be written as NIR: {n.name!r} ({op})")
        edges.extend((s, n.name) for s in ins)
    meta = {"dt": dt, "source": "stc", "stc_dropped": dropped}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def _neuron(nir, g: Graph, n, k: int, dt: float, nodes: dict):
    """Add the NIR neuron for ``n`` to ``nodes`` (parameter arrays of the neuron's shape, as
    NIR's type inference and snnTorch's importer expect); returns extra edges (a recurrent
    cycle)."""
    shape = tuple(n.shape)
    one = np.ones(shape)
    if n.OP == "LIF":
        tau = n.tau * dt * one
        nodes[n.name] = nir.LIF(tau=tau, r=one * (1.0 if n.decay_input else n.tau),
                                v_leak=one * n.v_reset, v_threshold=one * n.v_th,
                                v_reset=one * n.v_reset)
        return None
    if n.OP == "IF":
        nodes[n.name] = nir.IF(r=one / dt, v_threshold=one * n.v_th, v_reset=one * n.v_reset)
        return None
    def full(slot):
        return _full(g, n, slot, k).reshape(shape)

    vd, vg = full("v_decay"), full("v_gain")
    leak, th, reset = (full(s) for s in ("v_leak", "v_th", "v_reset"))
    if n.has_synapse:
        idc, ig = full("i_decay"), full("i_gain")
        if (idc <= 0).any():
            raise MappingError(f"{n.name!r} (CubaLIF): i_decay must be > 0 for NIR")
        tau_syn = dt / idc
        w_in = ig * tau_syn / dt
    if (vd <= 0).any():
        if n.has_synapse or (leak != 0).any() or not (vd == 0).all():
            raise MappingError(f"{n.name!r} (CubaLIF): v_decay = 0 with a synapse or leak "
                               "has no NIR form")
        r = vg / dt
        nodes[n.name] = nir.I(r=r) if n.output == "v" else nir.IF(
            r=r, v_threshold=th, v_reset=reset)
    else:
        tau = dt / vd
        r = vg * tau / dt
        if n.output == "v":
            nodes[n.name] = (nir.CubaLI(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=leak,
                                        w_in=w_in) if n.has_synapse else
                             nir.LI(tau=tau, r=r, v_leak=leak))
        elif n.has_synapse:
            nodes[n.name] = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=r, v_leak=leak,
                                        v_threshold=th, v_reset=reset, w_in=w_in)
        else:
            nodes[n.name] = nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=th,
                                    v_reset=reset)
    w = _np(g, n, "w_rec")
    if w is None:
        return None
    b = _np(g, n, "b_rec")
    rec = f"{n.name}__rec"
    nodes[rec] = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
    return [(n.name, rec), (rec, n.name)]


def write_nir(graph: Graph, path: str | Path, dt: float = 1e-4) -> Path:
    """Write :func:`to_nir` of ``graph`` to ``path`` (HDF5 via ``nir.write``, atomically:
    a temporary file then os.replace). Returns the path.

    Raises:
        ValueError, MappingError: as :func:`to_nir`. OSError: the file cannot be written.
    """
    import os
    import tempfile

    import nir

    ng = to_nir(graph, dt)
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    os.close(fd)
    try:
        nir.write(tmp, ng)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
